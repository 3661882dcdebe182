"""tpkd: topological persistence guided KD (Jeon et al. 2024, sensor data).

L = (1 - lambda) CE(zs, y)
  + lambda T^2 [alpha KL(z1 || zs) + (1 - alpha) KL(z2 || zs)]
  + beta * L_orth,
L_orth = sum_{3 groups} mean((rownorm(Cs) - rownorm(alpha C1 + (1 - alpha) C2))^2)

with C the batch correlation map (cosine similarity of batch-centred features, see
losses.correlation_map). The exact L_orth of the paper could not be read; this parameter-free form
and its reasons are in docs/methods.md.
"""

from __future__ import annotations

from .base import NonNegative, register
from .losses import correlation_map, sp_loss
from .tgd import TwoTeacherMethod, TwoTeacherParams


class TPKDParams(TwoTeacherParams):
    beta: NonNegative  # orthogonal correlation weight


@register("tpkd")
class TPKD(TwoTeacherMethod):
    params_model = TPKDParams
    maps = "corr"
    cache_reads = ("logits", "corr")

    def forward(self, batch):
        zs, fs, merged, ce, kd = self.run_all(batch)
        orth = sp_loss([correlation_map(f) for f in fs], merged)  # = losses.orth_loss
        return zs, {"ce": ce, "kd": kd, "orth": self.hparams.beta * orth}
