"""kd: Hinton et al. 2015 from teacher 1 (raw input) alone.

L = (1 - lambda) CE(zs, y) + lambda T^2 KL(softmax(z1/T) || softmax(zs/T))

params.yaml: ``distill.kd: {lambda, temperature, kl_reduction}``.
"""
from __future__ import annotations

from pipeline.distill.base import LogitKD, register
from pipeline.distill.hparams import LogitParams


@register("kd")
class KD(LogitKD):
    teacher_keys = ("image",)
    params_model = LogitParams
    cache_reads = ("logits",)

    def forward(self, batch):
        x, y = self.batch_item(batch, "x"), self.batch_item(batch, "y")
        zs, _ = self.student(x)
        z1, _ = self.teacher_outputs("image", batch)
        return zs, {"ce": self.ce(zs, y), "kd": self.hparams.lambda_ * self.kl(zs, z1)}
