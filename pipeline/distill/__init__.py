"""Distillation methods found by name: ``build_method(name, student, teachers, cfg)``.

``method(batch) -> (student_logits, {"ce": ..., "kd": ..., "sim"/"orth": ...})``; each value is
already weighted, the trainer sums them. Adding a method = one new module with a
``@register("name")`` class imported below + a params entry. Losses: docs/methods.md.
"""

from . import kd, scratch, sp, tgd, tpkd  # noqa: F401  (registration side effects)
from .base import METHODS, Method, build_method, freeze, register

__all__ = ["METHODS", "Method", "build_method", "freeze", "register"]
