"""tgd: topological guidance KD (Jeon et al. 2024), as the authors' code computes it.

L = (1 - lambda) CE(zs, y)
  + lambda T^2 [alpha KL(z1 || zs) + (1 - alpha) KL(z2 || zs)]
  + gamma * sum_{3 groups} mean((rownorm(Gs) - rownorm(alpha G1 + (1 - alpha) G2))^2)

z1, G1: teacher 1 on batch["x"]; z2, G2: teacher 2 on batch["pi"]; the teachers' RAW maps are
merged with alpha, then row-normalised.
"""

from __future__ import annotations

from .base import LogitKDMixin, LogitParams, Method, NonNegative, Weight, register
from .losses import merged_similarity_loss


class TwoTeacherParams(LogitParams):
    alpha: Weight  # teacher 1 (raw) vs teacher 2 (topology)


class TGDParams(TwoTeacherParams):
    gamma: NonNegative  # similarity-map weight per group


class TwoTeacherMethod(LogitKDMixin, Method):
    teacher_keys = ("image", "topology")
    inputs = ("x", "pi")

    def run_all(self, batch):
        x, y = self.batch_item(batch, "x"), self.batch_item(batch, "y")
        zs, fs = self.student(x)
        z1, f1 = self.teacher("image", batch)
        z2, f2 = self.teacher("topology", batch)
        lam, alpha = self.hparams.lambda_, self.hparams.alpha
        kd = lam * (alpha * self.kl(zs, z1) + (1.0 - alpha) * self.kl(zs, z2))
        return zs, fs, f1, f2, self.ce(zs, y), kd


@register("tgd")
class TGD(TwoTeacherMethod):
    params_model = TGDParams

    def forward(self, batch):
        zs, fs, f1, f2, ce, kd = self.run_all(batch)
        sim = merged_similarity_loss(fs, f1, f2, self.hparams.alpha)
        return zs, {"ce": ce, "kd": kd, "sim": self.hparams.gamma * sim}
