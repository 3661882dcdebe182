"""tgd: topological guidance KD (Jeon et al. 2024), as the authors' code computes it.

L = (1 - lambda) CE(zs, y)
  + lambda T^2 [alpha KL(z1 || zs) + (1 - alpha) KL(z2 || zs)]
  + gamma * sum_{3 groups} mean((rownorm(Gs) - rownorm(alpha G1 + (1 - alpha) G2))^2)

z1, G1: teacher 1 on batch["x"]; z2, G2: teacher 2 on batch["pi"]; the teachers' RAW maps are
merged with alpha, then row-normalised. Teacher 2's share of each merged map is logged per epoch
as a diagnostic (``share_g1..g3``), never added to the loss.

params.yaml: ``distill.tgd: {lambda, temperature, kl_reduction, alpha, gamma}``.
"""
from __future__ import annotations

from pipeline.distill.base import register
from pipeline.distill.hparams import NonNegative, TwoTeacherParams
from pipeline.distill.two_teachers import TwoTeacherMethod
from pipeline.lazy import lazy_import

losses = lazy_import("pipeline.distill.losses")


class TGDParams(TwoTeacherParams):
    gamma: NonNegative  # similarity-map weight per group


@register("tgd")
class TGD(TwoTeacherMethod):
    params_model = TGDParams
    cache_reads = ("logits", "gram")

    def forward(self, batch):
        zs, fs, merged, ce, kd = self.run_all(batch)
        sim = losses.sp_loss(losses.similarity_maps(fs), merged)  # = losses.merged_similarity_loss
        return zs, {"ce": ce, "kd": kd, "sim": self.hparams.gamma * sim}
