"""Distillation methods found by name: ``build_method(name, student, teachers, block)``.

``method(batch) -> (student_logits, {"ce": ..., "kd": ..., "sim"/"orth": ...})``; each value is
already weighted, the trainer sums them. A method is one file in ``pipeline/distill/methods/``
(a ``@register("name")`` class declaring its hyperparameters as ``params_model``) plus its block
``distill.<name>`` in params.yaml: see docs/ARCHITECTURE.md. Losses: docs/methods.md.
Importing this package loads no torch (pipeline.lazy).
"""

from .base import METHODS, TEACHER_INPUTS, Method, build_method, freeze, method_hparams, register, teacher_inputs

__all__ = ["METHODS", "TEACHER_INPUTS", "Method", "build_method", "freeze", "method_hparams", "register",
           "teacher_inputs"]
