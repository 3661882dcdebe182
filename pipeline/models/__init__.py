"""Model registry: ``build_model(name, in_channels, num_classes, dims=2)``.

Every model maps ``x`` ((B, C, H, W) for dims=2, (B, C, L) for dims=1) to
``(logits, [g1, g2, g3])``: logits (B, num_classes) and the outputs of its three groups, the
features the distillation methods compare.

Names are parsed generically by family: ``MODELS`` maps a family prefix to a ``ModelFamily``
(a regular expression, a builder taking the parsed integers, and a human-readable form). A new
family is one ``register_family(...)`` call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from torch import nn

from pipeline.errors import ParamsError

from .resnet import CifarResNet
from .wrn import WideResNet

__all__ = ["MODELS", "ModelFamily", "register_family", "build_model", "WideResNet", "CifarResNet"]


@dataclass(frozen=True)
class ModelFamily:
    pattern: re.Pattern
    build: Callable[..., nn.Module]   # build(match, in_channels, num_classes, dims) -> nn.Module
    form: str                          # accepted form, shown in error messages


MODELS: dict[str, ModelFamily] = {}


def register_family(prefix: str, pattern: str, form: str):
    """Decorator registering ``build(match, in_channels, num_classes, dims)`` under ``prefix``."""
    def deco(fn):
        if prefix in MODELS:
            raise ValueError(f"model family {prefix!r} registered twice")
        MODELS[prefix] = ModelFamily(re.compile(pattern), fn, form)
        return fn
    return deco


def _forms() -> str:
    return "; ".join(f.form for f in MODELS.values())


def _bad(name: str, why: str) -> ParamsError:
    return ParamsError(f"model name {name!r}: {why}. Accepted forms: {_forms()}")


@register_family("wrn", r"^wrn(\d+)_(\d+)$",
                 "wrn<depth>_<width> with depth = 6n+4 >= 10 (10, 16, 22, 28, 40, ...) and "
                 "width >= 1, e.g. wrn16_1, wrn16_3, wrn28_1, wrn40_2")
def _build_wrn(m: re.Match, in_channels: int, num_classes: int, dims: int) -> nn.Module:
    depth, width = int(m.group(1)), int(m.group(2))
    if depth < 10 or (depth - 4) % 6 != 0:
        raise _bad(m.string, f"WRN depth {depth} is not 6n+4 >= 10")
    if width < 1:
        raise _bad(m.string, f"WRN width {width} is not >= 1")
    return WideResNet(depth, width, in_channels, num_classes, dims)


@register_family("resnet", r"^resnet(\d+)$",
                 "resnet<n> (CIFAR ResNet) with n = 6m+2 >= 8, e.g. resnet8, resnet14, resnet20, "
                 "resnet32, resnet56")
def _build_resnet(m: re.Match, in_channels: int, num_classes: int, dims: int) -> nn.Module:
    depth = int(m.group(1))
    if depth < 8 or (depth - 2) % 6 != 0:
        raise _bad(m.string, f"ResNet depth {depth} is not 6m+2 >= 8")
    return CifarResNet(depth, in_channels, num_classes, dims)


def build_model(name: str, in_channels: int, num_classes: int, dims: int = 2) -> nn.Module:
    """Build a registered model by name, e.g. ``build_model("wrn16_1", 3, 10)``.

    Raises ``ParamsError`` naming the value for an unknown or malformed name, a non-positive
    channel or class count, or ``dims`` other than 1 or 2.
    """
    if not isinstance(name, str):
        raise _bad(repr(name), "not a string")
    if dims not in (1, 2):
        raise ParamsError(f"model {name!r}: dims must be 1 (signals, (B, C, L)) or 2 "
                          f"(images, (B, C, H, W)), got {dims!r}")
    for arg, value in (("in_channels", in_channels), ("num_classes", num_classes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ParamsError(f"model {name!r}: {arg} must be a positive integer, got {value!r}")
    for family in MODELS.values():
        match = family.pattern.match(name)
        if match:
            return family.build(match, in_channels, num_classes, dims)
    raise _bad(name, "unknown model")

