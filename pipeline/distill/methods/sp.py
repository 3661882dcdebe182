"""sp: similarity-preserving KD (Tung & Mori 2019) from teacher 1 alone, in TGD's weighting.

L = (1 - lambda) CE(zs, y) + gamma * sum_{3 groups} mean((rownorm(Gs) - rownorm(G1))^2)

(Tung & Mori weight CE by 1; here CE keeps TGD's (1 - lambda) so that sp is exactly TGD's
feature term with alpha = 1 and no logit term: see docs/methods.md.)

params.yaml: ``distill.sp: {lambda, gamma}``.
"""
from __future__ import annotations

from pipeline.distill.base import LogitKD, register
from pipeline.distill.hparams import CEParams, NonNegative
from pipeline.lazy import lazy_import

losses = lazy_import("pipeline.distill.losses")


class SPParams(CEParams):
    gamma: NonNegative  # similarity-map weight per group


@register("sp")
class SP(LogitKD):
    teacher_keys = ("image",)
    params_model = SPParams
    cache_reads = ("gram",)

    def forward(self, batch):
        x, y = self.batch_item(batch, "x"), self.batch_item(batch, "y")
        zs, fs = self.student(x)
        _, g1 = self.teacher_outputs("image", batch, "gram")
        sim = losses.sp_loss(losses.similarity_maps(fs), g1)
        return zs, {"ce": self.ce(zs, y), "sim": self.hparams.gamma * sim}
