"""Distillation methods found by name: ``build_method(name, student, teachers, distill)``.

``method(batch) -> (student_logits, {"ce": ..., "kd": ..., "sim"/"orth": ...})``; each value is
already weighted, the trainer sums them. Every module of this package is imported here, so a
new method is one new module with a ``@register("name")`` class (its hyperparameters declared as
``params_model``) plus its keys in params.yaml: see docs/ARCHITECTURE.md. Losses: docs/methods.md.
"""

import importlib
import pkgutil

from .base import METHODS, TEACHER_INPUTS, Method, build_method, freeze, method_params, register

for _module in pkgutil.iter_modules(__path__):  # registration side effects, every method module
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["METHODS", "TEACHER_INPUTS", "Method", "build_method", "freeze", "method_params", "register"]
