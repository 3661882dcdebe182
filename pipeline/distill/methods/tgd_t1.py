"""tgd_t1: tgd with teacher 1 alone (tgd at alpha = 1), the control that pairs teacher 2 away.

L = (1 - lambda) CE(zs, y) + lambda T^2 KL(z1 || zs)
  + gamma * sum_{3 groups} mean((rownorm(Gs) - rownorm(G1))^2)

= kd's loss + sp's similarity term. tgd(alpha) - tgd_t1, with the same lambda, T and gamma and
the same teacher 1, is everything teacher 2 adds. It needs no teacher 2 (none runs or is read).

params.yaml: ``distill.tgd_t1: {lambda, temperature, kl_reduction, gamma}`` (tgd's, less alpha).
"""
from __future__ import annotations

from pipeline.distill.base import LogitKD, register
from pipeline.distill.hparams import LogitParams, NonNegative
from pipeline.lazy import lazy_import

losses = lazy_import("pipeline.distill.losses")


class TGDT1Params(LogitParams):
    gamma: NonNegative  # similarity-map weight per group


@register("tgd_t1")
class TGDTeacher1(LogitKD):
    teacher_keys = ("image",)
    params_model = TGDT1Params
    cache_reads = ("logits", "gram")

    def forward(self, batch):
        x, y = self.batch_item(batch, "x"), self.batch_item(batch, "y")
        zs, fs = self.student(x)
        z1, g1 = self.teacher_outputs("image", batch, "gram")
        sim = losses.sp_loss(losses.similarity_maps(fs), g1)
        return zs, {"ce": self.ce(zs, y), "kd": self.hparams.lambda_ * self.kl(zs, z1),
                    "sim": self.hparams.gamma * sim}
