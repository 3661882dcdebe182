"""scratch: plain cross-entropy on the student (teachers and the scratch student use it too)."""

from __future__ import annotations

import torch.nn.functional as F

from pipeline.errors import ParamsError

from .base import TEACHER_INPUTS, Method, register


@register("scratch")
class Scratch(Method):
    """L = CE(model(batch[input_key]), y). ``input_key`` "x" (raw input) or "pi" (persistence
    images, for training teacher 2). Needs no teachers and no ``distill`` params."""

    def __init__(self, student, teachers, hparams, input_key: str = "x"):
        if input_key not in TEACHER_INPUTS.values():
            raise ParamsError(f"scratch: input_key must be 'x' or 'pi', got {input_key!r}")
        super().__init__(student, {}, hparams)
        self.inputs = (input_key,)

    def forward(self, batch):
        logits, _ = self.student(self.batch_item(batch, self.inputs[0]))
        return logits, {"ce": F.cross_entropy(logits, self.batch_item(batch, "y"))}
