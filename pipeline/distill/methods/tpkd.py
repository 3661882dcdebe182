"""tpkd: topological persistence guided KD (Jeon et al. 2024, sensor data).

L = (1 - lambda) CE(zs, y)
  + lambda T^2 [alpha KL(z1 || zs) + (1 - alpha) KL(z2 || zs)]
  + beta * L_orth,
L_orth = sum_{3 groups} mean((rownorm(Cs) - rownorm(alpha C1 + (1 - alpha) C2))^2)

with C the batch correlation map (cosine similarity of batch-centred features, see
losses.correlation_map). The exact L_orth of the paper could not be read; this parameter-free form
and its reasons are in docs/methods.md.

params.yaml: ``distill.tpkd: {lambda, temperature, kl_reduction, alpha, beta}``.
"""
from __future__ import annotations

from pipeline.distill.base import register
from pipeline.distill.hparams import NonNegative, TwoTeacherParams
from pipeline.distill.two_teachers import TwoTeacherMethod
from pipeline.lazy import lazy_import

losses = lazy_import("pipeline.distill.losses")


class TPKDParams(TwoTeacherParams):
    beta: NonNegative  # orthogonal correlation weight


@register("tpkd")
class TPKD(TwoTeacherMethod):
    params_model = TPKDParams
    maps = "corr"
    cache_reads = ("logits", "corr")

    def forward(self, batch):
        zs, fs, merged, ce, kd = self.run_all(batch)
        orth = losses.sp_loss([losses.correlation_map(f) for f in fs], merged)  # = losses.orth_loss
        return zs, {"ce": ce, "kd": kd, "orth": self.hparams.beta * orth}
