"""scratch: plain cross-entropy on the student (teachers and the scratch student use it too).
It reads no `distill` block."""
from __future__ import annotations

from pipeline.distill.base import TEACHER_INPUTS, Method, register
from pipeline.errors import ParamsError
from pipeline.lazy import lazy_import

losses = lazy_import("pipeline.distill.losses")


@register("scratch")
class Scratch(Method):
    """L = CE(model(batch[input_key]), y). ``input_key`` "x" (raw input) or "pi" (persistence
    images, for training teacher 2). Needs no teachers."""

    def __init__(self, student, teachers, hparams, input_key: str = "x"):
        if input_key not in TEACHER_INPUTS.values():
            raise ParamsError(f"scratch: input_key must be 'x' or 'pi', got {input_key!r}")
        super().__init__(student, {}, hparams)
        self.inputs = (input_key,)

    def forward(self, batch):
        logits, _ = self.student(self.batch_item(batch, self.inputs[0]))
        return logits, {"ce": losses.cross_entropy(logits, self.batch_item(batch, "y"))}
