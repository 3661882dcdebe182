"""What the two-teacher methods (tgd, tpkd) share: both teachers' logits in one KD term and
their per-group maps merged with alpha, teacher 2's share of each merged map logged."""
from __future__ import annotations

from pipeline.lazy import lazy_import

from .base import LogitKD

losses = lazy_import("pipeline.distill.losses")
diagnostics = lazy_import("pipeline.distill.diagnostics")


class TwoTeacherMethod(LogitKD):
    teacher_keys = ("image", "topology")
    maps = "gram"  # the teachers' per-group maps that the feature term merges

    def run_all(self, batch):
        """Student outputs, the teachers' merged maps (alpha M1 + (1 - alpha) M2 per group,
        teacher 2's share logged), and the ce and kd terms."""
        x, y = self.batch_item(batch, "x"), self.batch_item(batch, "y")
        zs, fs = self.student(x)
        z1, m1 = self.teacher_outputs("image", batch, self.maps)
        z2, m2 = self.teacher_outputs("topology", batch, self.maps)
        lam, alpha = self.hparams.lambda_, self.hparams.alpha
        kd = lam * (alpha * self.kl(zs, z1) + (1.0 - alpha) * self.kl(zs, z2))
        merged = losses.merge_maps(m1, m2, alpha)
        diagnostics.log_teacher2_share(self, m2, merged, alpha)
        return zs, fs, merged, self.ce(zs, y), kd
