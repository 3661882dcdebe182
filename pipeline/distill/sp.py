"""sp: similarity-preserving KD (Tung & Mori 2019) from teacher 1 alone, in TGD's weighting.

L = (1 - lambda) CE(zs, y) + gamma * sum_{3 groups} mean((rownorm(Gs) - rownorm(G1))^2)

(Tung & Mori weight CE by 1; here CE keeps TGD's (1 - lambda) so that sp is exactly TGD's
feature term with alpha = 1 and no logit term: see docs/methods.md.)
"""

from __future__ import annotations

from .base import LogitKDMixin, Method, register
from .losses import similarity_maps, sp_loss
from .teacher_outputs import teacher_outputs


@register("sp")
class SP(LogitKDMixin, Method):
    teacher_keys = ("image",)
    cache_reads = ("gram",)

    def __init__(self, student, teachers, cfg):
        super().__init__(student, teachers, cfg)
        self._read_kd_params()
        self.gamma = self.param("gamma", 0.0)

    def forward(self, batch):
        x, y = self.batch_item(batch, "x"), self.batch_item(batch, "y")
        zs, fs = self.student(x)
        _, g1 = teacher_outputs(self, batch, "image", "gram")
        sim = sp_loss(similarity_maps(fs), g1)
        return zs, {"ce": self.ce(zs, y), "sim": self.gamma * sim}
