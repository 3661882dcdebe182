"""tgd: topological guidance KD (Jeon et al. 2024), REFERENCE.md section 3, as the authors' code.

L = (1 - lambda) CE(zs, y)
  + lambda T^2 [alpha KL(z1 || zs) + (1 - alpha) KL(z2 || zs)]
  + gamma * sum_{3 groups} mean((rownorm(Gs) - rownorm(alpha G1 + (1 - alpha) G2))^2)

z1, G1: teacher 1 on batch["x"]; z2, G2: teacher 2 on batch["pi"]; the teachers' RAW maps are
merged with alpha, then row-normalised.
"""

from __future__ import annotations

from .base import LogitKDMixin, Method, register
from .losses import merged_similarity_loss


class TwoTeacherMethod(LogitKDMixin, Method):
    teacher_keys = ("image", "topology")
    needs_pi = True

    def __init__(self, student, teachers, cfg):
        super().__init__(student, teachers, cfg)
        self._read_kd_params()
        self.alpha = self.param("alpha", 0.0, 1.0)

    def run_all(self, batch):
        x, pi, y = (self.batch_item(batch, k) for k in ("x", "pi", "y"))
        zs, fs = self.student(x)
        z1, f1 = self.teacher("image", x)
        z2, f2 = self.teacher("topology", pi)
        kd = self.lam * (self.alpha * self.kl(zs, z1) + (1.0 - self.alpha) * self.kl(zs, z2))
        return zs, fs, f1, f2, self.ce(zs, y), kd


@register("tgd")
class TGD(TwoTeacherMethod):
    def __init__(self, student, teachers, cfg):
        super().__init__(student, teachers, cfg)
        self.gamma = self.param("gamma", 0.0)

    def forward(self, batch):
        zs, fs, f1, f2, ce, kd = self.run_all(batch)
        sim = merged_similarity_loss(fs, f1, f2, self.alpha)
        return zs, {"ce": ce, "kd": kd, "sim": self.gamma * sim}
