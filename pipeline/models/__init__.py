"""Model registry: ``build_model(name, in_channels, num_classes, dims=2)``.

Every model maps ``x`` ((B, C, H, W) for dims=2, (B, C, L) for dims=1) to
``(logits, [g1, g2, g3])``: logits (B, num_classes) and the outputs of its three groups, the
features the distillation methods compare.

Names are parsed by family: ``MODELS`` maps a family prefix to a ``ModelFamily`` (a regular
expression, a check of the parsed integers, a human-readable form, and the class that builds
it, as ``"module:Class"``). Parsing a name needs no torch (the params validation of every stage
checks the names); the class is imported when a model is built. A new family is its module plus
one ``MODELS.register`` line here.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any, Callable

from pipeline.errors import ParamsError
from pipeline.registry import Registry

__all__ = ["MODELS", "ModelFamily", "build_model", "check_model_name"]


@dataclass(frozen=True)
class ModelFamily:
    pattern: str
    form: str                                   # accepted form, shown in error messages
    arguments: Callable[[re.Match], tuple]      # the class's leading arguments; raises ValueError
    builder: str                                # "module:Class", called as Class(*arguments, in_channels, num_classes, dims)


MODELS = Registry("model family")


def _wrn_arguments(m: re.Match) -> tuple[int, int]:
    depth, width = int(m.group(1)), int(m.group(2))
    if depth < 10 or (depth - 4) % 6 != 0:
        raise ValueError(f"WRN depth {depth} is not 6n+4 >= 10")
    if width < 1:
        raise ValueError(f"WRN width {width} is not >= 1")
    return depth, width


def _resnet_arguments(m: re.Match) -> tuple[int]:
    depth = int(m.group(1))
    if depth < 8 or (depth - 2) % 6 != 0:
        raise ValueError(f"ResNet depth {depth} is not 6m+2 >= 8")
    return (depth,)


MODELS.register("wrn")(ModelFamily(
    r"^wrn(\d+)_(\d+)$", "wrn<depth>_<width> with depth = 6n+4 >= 10 (10, 16, 22, 28, 40, ...) and "
    "width >= 1, e.g. wrn16_1, wrn16_3, wrn28_1, wrn40_2", _wrn_arguments, "pipeline.models.wrn:WideResNet"))
MODELS.register("resnet")(ModelFamily(
    r"^resnet(\d+)$", "resnet<n> (CIFAR ResNet) with n = 6m+2 >= 8, e.g. resnet8, resnet14, resnet20, "
    "resnet32, resnet56", _resnet_arguments, "pipeline.models.resnet:CifarResNet"))


def _bad(name: str, why: str) -> ParamsError:
    forms = "; ".join(MODELS[prefix].form for prefix in MODELS)
    return ParamsError(f"model name {name!r}: {why}. Accepted forms: {forms}")


def check_model_name(name: Any) -> tuple[ModelFamily, tuple]:
    """The family of model `name` and its parsed arguments; ParamsError for an unknown or
    malformed name. No torch."""
    if not isinstance(name, str):
        raise _bad(repr(name), "not a string")
    for prefix in MODELS:
        family = MODELS[prefix]
        match = re.match(family.pattern, name)
        if match:
            try:
                return family, family.arguments(match)
            except ValueError as error:
                raise _bad(name, str(error)) from None
    raise _bad(name, "unknown model")


def build_model(name: str, in_channels: int, num_classes: int, dims: int = 2) -> Any:
    """Build a registered model by name, e.g. ``build_model("wrn16_1", 3, 10)``.

    Raises ``ParamsError`` naming the value for an unknown or malformed name, a non-positive
    channel or class count, or ``dims`` other than 1 or 2.
    """
    family, arguments = check_model_name(name)
    if dims not in (1, 2):
        raise ParamsError(f"model {name!r}: dims must be 1 (signals, (B, C, L)) or 2 "
                          f"(images, (B, C, H, W)), got {dims!r}")
    for arg, value in (("in_channels", in_channels), ("num_classes", num_classes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ParamsError(f"model {name!r}: {arg} must be a positive integer, got {value!r}")
    module, _, cls = family.builder.partition(":")
    return getattr(importlib.import_module(module), cls)(*arguments, in_channels, num_classes, dims)
