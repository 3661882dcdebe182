"""aver: multi-teacher KD on the average of both teachers' softened outputs (no feature term),
the standard multi-teacher baseline (You et al. 2017; "AVER" in the multi-teacher literature).

L = (1 - lambda) CE(zs, y) + lambda T^2 KL(p_avg || softmax(zs/T)),
p_avg = (softmax(z1/T) + softmax(z2/T)) / 2

Teacher 2 is the PI teacher, or a second raw teacher (models.teacher_topology_input: x). Against
tgd it asks whether a second teacher's soft targets alone (no similarity maps, equal weights)
do what tgd does.

params.yaml: ``distill.aver: {lambda, temperature, kl_reduction}``.
"""
from __future__ import annotations

from pipeline.distill.base import LogitKD, register
from pipeline.distill.hparams import LogitParams
from pipeline.lazy import lazy_import

logit_losses = lazy_import("pipeline.distill.logit_losses")


@register("aver")
class Aver(LogitKD):
    teacher_keys = ("image", "topology")
    params_model = LogitParams
    cache_reads = ("logits",)

    def forward(self, batch):
        x, y = self.batch_item(batch, "x"), self.batch_item(batch, "y")
        zs, _ = self.student(x)
        z1, _ = self.teacher_outputs("image", batch)
        z2, _ = self.teacher_outputs("topology", batch)
        h = self.hparams
        kl = logit_losses.averaged_kd_kl(zs, [z1, z2], h.temperature, h.kl_reduction)
        return zs, {"ce": self.ce(zs, y), "kd": h.lambda_ * h.temperature ** 2 * kl}
