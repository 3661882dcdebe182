"""tgd: topological guidance KD (Jeon et al. 2024), as the authors' code computes it.

L = (1 - lambda) CE(zs, y)
  + lambda T^2 [alpha KL(z1 || zs) + (1 - alpha) KL(z2 || zs)]
  + gamma * sum_{3 groups} mean((rownorm(Gs) - rownorm(alpha G1 + (1 - alpha) G2))^2)

z1, G1: teacher 1 on batch["x"]; z2, G2: teacher 2 on batch["pi"]; the teachers' RAW maps are
merged with alpha, then row-normalised. Teacher 2's share of each merged map is logged per epoch
as a diagnostic (``share_g1..g3``), never added to the loss.
"""

from __future__ import annotations

from .base import LogitKDMixin, LogitParams, Method, NonNegative, Weight, register
from .diagnostics import log_teacher2_share
from .losses import merge_maps, similarity_maps, sp_loss


class TwoTeacherParams(LogitParams):
    alpha: Weight  # teacher 1 (raw) vs teacher 2 (topology)


class TGDParams(TwoTeacherParams):
    gamma: NonNegative  # similarity-map weight per group


class TwoTeacherMethod(LogitKDMixin, Method):
    teacher_keys = ("image", "topology")
    inputs = ("x", "pi")
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
        merged = merge_maps(m1, m2, alpha)
        log_teacher2_share(self, m2, merged, alpha)
        return zs, fs, merged, self.ce(zs, y), kd


@register("tgd")
class TGD(TwoTeacherMethod):
    params_model = TGDParams
    cache_reads = ("logits", "gram")

    def forward(self, batch):
        zs, fs, merged, ce, kd = self.run_all(batch)
        sim = sp_loss(similarity_maps(fs), merged)  # = losses.merged_similarity_loss
        return zs, {"ce": ce, "kd": kd, "sim": self.hparams.gamma * sim}
