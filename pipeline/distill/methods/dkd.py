"""dkd: decoupled KD (Zhao et al., CVPR 2022) from teacher 1, as mdistiller trains it.

L = ce_weight CE(zs, y) + min((epoch + 1) / warmup, 1) [alpha TCKD + beta NCKD]

TCKD, NCKD: pipeline.distill.logit_losses.dkd_parts (mdistiller's dkd_loss). The warm-up ramps
the distillation terms linearly over the first ``warmup`` epochs (epochs counted from 1, as in
mdistiller). Published CIFAR weights: ce_weight 1, alpha 1, beta 8, T 4, warm-up 20 epochs -
which at the user's 20 epochs spans the whole run (the last epoch alone has full weight); we keep
it, as the published recipe, and say so in docs/methods.md.

params.yaml: ``distill.dkd: {ce_weight, alpha, beta, temperature, warmup}``.
"""
from __future__ import annotations

from pydantic import Field
from typing_extensions import Annotated

from pipeline.distill.base import Method, register
from pipeline.distill.hparams import NonNegative, Positive
from pipeline.lazy import lazy_import
from pipeline.schema import Section

losses = lazy_import("pipeline.distill.losses")
logit_losses = lazy_import("pipeline.distill.logit_losses")


class DKDParams(Section):
    ce_weight: NonNegative
    alpha: NonNegative           # TCKD weight (target vs the other classes)
    beta: NonNegative            # NCKD weight (among the other classes)
    temperature: Positive
    warmup: Annotated[int, Field(ge=1)]  # epochs over which the distillation terms ramp up


@register("dkd")
class DKD(Method):
    teacher_keys = ("image",)
    params_model = DKDParams
    cache_reads = ("logits",)

    def warmup_factor(self) -> float:
        return min((self.epoch + 1) / self.hparams.warmup, 1.0)

    def forward(self, batch):
        x, y = self.batch_item(batch, "x"), self.batch_item(batch, "y")
        zs, _ = self.student(x)
        z1, _ = self.teacher_outputs("image", batch)
        h, ramp = self.hparams, self.warmup_factor()
        tckd, nckd = logit_losses.dkd_parts(zs, z1, y, h.temperature)
        return zs, {"ce": h.ce_weight * losses.cross_entropy(zs, y),
                    "tckd": ramp * h.alpha * tckd, "nckd": ramp * h.beta * nckd}
