"""kd: Hinton et al. 2015 from teacher 1 (raw input) alone.

L = (1 - lambda) CE(zs, y) + lambda T^2 KL(softmax(z1/T) || softmax(zs/T))
"""

from __future__ import annotations

from .base import LogitKDMixin, Method, register
from .teacher_outputs import teacher_outputs


@register("kd")
class KD(LogitKDMixin, Method):
    teacher_keys = ("image",)
    cache_reads = ("logits",)

    def __init__(self, student, teachers, cfg):
        super().__init__(student, teachers, cfg)
        self._read_kd_params()

    def forward(self, batch):
        x, y = self.batch_item(batch, "x"), self.batch_item(batch, "y")
        zs, _ = self.student(x)
        z1, _ = teacher_outputs(self, batch, "image")
        return zs, {"ce": self.ce(zs, y), "kd": self.lam * self.kl(zs, z1)}
