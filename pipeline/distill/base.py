"""The Method contract (mdistiller-style) and the method registry.

A Method holds the student and its frozen teachers; ``method(batch)`` returns
``(student_logits, {"ce": ..., "kd": ..., ...})`` where every value is an already-weighted scalar
loss: the trainer sums the values and logs each name. ``batch`` is a dict with ``x`` (raw input),
``y`` (labels) and, when ``method.needs_pi``, ``pi`` (persistence images).
"""

from __future__ import annotations

from typing import Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.errors import ParamsError

from .diagnostics import Diagnostics  # teacher cache / diagnostics (cache branch)
from .losses import KL_REDUCTIONS, kd_kl

METHODS: dict[str, type["Method"]] = {}


def register(name: str):
    """Class decorator: ``@register("kd") class KD(Method): ...``."""
    def deco(cls):
        if name in METHODS:
            raise ValueError(f"distillation method {name!r} registered twice")
        cls.name = name
        METHODS[name] = cls
        return cls
    return deco


def build_method(name: str, student: nn.Module, teachers: Mapping[str, nn.Module] | None,
                 cfg: Mapping, **kwargs) -> "Method":
    """Build the registered method ``name``. ``teachers``: {"image": teacher 1 (sees batch["x"]),
    "topology": teacher 2 (sees batch["pi"])}; ``cfg``: the params ``distill`` section. Extra
    keyword arguments go to the method (e.g. ``input_key="pi"`` for "scratch")."""
    if name not in METHODS:
        raise ParamsError(f"distillation method {name!r} is unknown; registered methods: "
                          f"{', '.join(sorted(METHODS))}")
    return METHODS[name](student, dict(teachers or {}), dict(cfg or {}), **kwargs)


def freeze(model: nn.Module) -> nn.Module:
    """Teacher: eval mode, requires_grad False on every parameter."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class Method(nn.Module):
    """Base class. Subclasses set ``teacher_keys`` and ``needs_pi`` and implement ``forward``."""

    name: str = "?"
    teacher_keys: tuple[str, ...] = ()
    needs_pi: bool = False
    # What forward reads through teacher_outputs ("logits", "gram", "corr"): the teachers stage
    # stores exactly these (pipeline.teacher_cache); () = not cacheable, the teachers always run.
    cache_reads: tuple[str, ...] = ()

    def __init__(self, student: nn.Module, teachers: Mapping[str, nn.Module], cfg: Mapping):
        super().__init__()
        self.student = student
        self.cfg = dict(cfg)
        missing = [k for k in self.teacher_keys if teachers.get(k) is None]
        if missing:
            raise ParamsError(f"distillation method {self.name!r} needs teacher(s) "
                              f"{', '.join(repr(k) for k in missing)}; got "
                              f"{sorted(k for k, v in teachers.items() if v is not None) or 'none'}")
        self.teachers = nn.ModuleDict({k: freeze(teachers[k]) for k in self.teacher_keys})
        self.diagnostics = Diagnostics()  # per-epoch numbers that are not losses (e.g. map shares)

    # -- contract ------------------------------------------------------------------------------
    def forward(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError

    def train(self, mode: bool = True) -> "Method":
        super().train(mode)
        for t in self.teachers.values():
            t.eval()
        return self

    def student_parameters(self) -> Iterator[nn.Parameter]:
        """What the optimizer updates (the student; teachers never)."""
        return self.student.parameters()

    # -- helpers -------------------------------------------------------------------------------
    @torch.no_grad()
    def teacher(self, key: str, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Run a frozen teacher without gradients (always in eval mode)."""
        t = self.teachers[key]
        if t.training:
            t.eval()
        return t(x)

    def param(self, key: str, lo: float | None = None, hi: float | None = None) -> float:
        """A numeric key of the ``distill`` section, range-checked; ParamsError names it."""
        if key not in self.cfg:
            raise ParamsError(f"distill.{key} is missing (needed by method {self.name!r})")
        value = self.cfg[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"distill.{key} must be a number, got {value!r}")
        value = float(value)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ParamsError(f"distill.{key} = {value!r} is outside [{lo}, {hi}]")
        return value

    def kl_reduction(self) -> str:
        value = self.cfg.get("kl_reduction", "batchmean")
        if value not in KL_REDUCTIONS:
            raise ParamsError(f"distill.kl_reduction = {value!r}; expected one of {KL_REDUCTIONS}")
        return value

    @staticmethod
    def batch_item(batch: Mapping[str, Tensor], key: str) -> Tensor:
        if key not in batch or batch[key] is None:
            raise KeyError(f"batch has no {key!r} (keys: {sorted(batch)})")
        return batch[key]


class LogitKDMixin:
    """Reads lambda, temperature and kl_reduction once; provides ``ce`` and ``kl`` helpers."""

    def _read_kd_params(self) -> None:
        self.lam = self.param("lambda", 0.0, 1.0)
        self.T = self.param("temperature", 1e-6)
        self.reduction = self.kl_reduction()

    def ce(self, zs: Tensor, y: Tensor) -> Tensor:
        return (1.0 - self.lam) * F.cross_entropy(zs, y)

    def kl(self, zs: Tensor, zt: Tensor) -> Tensor:
        """T^2 * KL(softmax(zt/T) || softmax(zs/T)) (unweighted by lambda)."""
        return self.T ** 2 * kd_kl(zs, zt, self.T, self.reduction)
