"""tgd: topological guidance KD (Jeon et al. 2024), REFERENCE.md section 3, as the authors' code.

L = (1 - lambda) CE(zs, y)
  + lambda T^2 [alpha KL(z1 || zs) + (1 - alpha) KL(z2 || zs)]
  + gamma * sum_{3 groups} mean((rownorm(Gs) - rownorm(alpha G1 + (1 - alpha) G2))^2)

z1, G1: teacher 1 on batch["x"]; z2, G2: teacher 2 on batch["pi"]; the teachers' RAW maps are
merged with alpha, then row-normalised. Teacher 2's share of each merged map is logged per epoch
as a diagnostic (``share_g1..g3``), never added to the loss.
"""

from __future__ import annotations

from .base import LogitKDMixin, Method, register
from .diagnostics import log_teacher2_share
from .losses import merge_maps, similarity_maps, sp_loss
from .teacher_outputs import teacher_outputs


class TwoTeacherMethod(LogitKDMixin, Method):
    teacher_keys = ("image", "topology")
    needs_pi = True
    maps = "gram"  # the teachers' per-group maps that the feature term merges

    def __init__(self, student, teachers, cfg):
        super().__init__(student, teachers, cfg)
        self._read_kd_params()
        self.alpha = self.param("alpha", 0.0, 1.0)

    def run_all(self, batch):
        """Student outputs, the teachers' merged maps (alpha M1 + (1 - alpha) M2 per group),
        and the ce and kd terms."""
        x, y = self.batch_item(batch, "x"), self.batch_item(batch, "y")
        zs, fs = self.student(x)
        z1, m1 = teacher_outputs(self, batch, "image", self.maps)
        z2, m2 = teacher_outputs(self, batch, "topology", self.maps)
        kd = self.lam * (self.alpha * self.kl(zs, z1) + (1.0 - self.alpha) * self.kl(zs, z2))
        merged = merge_maps(m1, m2, self.alpha)
        log_teacher2_share(self.diagnostics, m2, merged, self.alpha)
        return zs, fs, merged, self.ce(zs, y), kd


@register("tgd")
class TGD(TwoTeacherMethod):
    cache_reads = ("logits", "gram")

    def __init__(self, student, teachers, cfg):
        super().__init__(student, teachers, cfg)
        self.gamma = self.param("gamma", 0.0)

    def forward(self, batch):
        zs, fs, merged, ce, kd = self.run_all(batch)
        sim = sp_loss(similarity_maps(fs), merged)  # = losses.merged_similarity_loss
        return zs, {"ce": ce, "kd": kd, "sim": self.gamma * sim}
