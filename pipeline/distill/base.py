"""The Method contract (mdistiller-style) and the method registry.

A Method holds the student and its frozen teachers and declares, as class attributes:

- ``teacher_keys``: the teachers it uses, among ``TEACHER_INPUTS`` ("image": teacher 1 on raw
  inputs, "topology": teacher 2 on persistence images);
- ``inputs``: the batch keys it reads besides the labels ``y`` ("x" raw inputs, "pi" persistence
  images); the training loop builds batches with exactly these;
- ``params_model``: a pydantic model of the ``distill`` keys it reads. The ``distill`` schema is
  the union of every registered method's model (pipeline.params), each ``distill@<method>`` DVC
  stage depends on its method's keys only, and the method receives its validated model as
  ``self.hparams``.

``method(batch) -> (student_logits, {"ce": ..., "kd": ..., ...})``: every value an
already-weighted scalar loss; the loop sums them and logs each name per epoch. A method reports
anything else worth logging (e.g. a share of a merged map) with ``self.diagnose(name, value)``:
diagnostics are logged per epoch (as ``<model>_<name>``) but never summed into the loss.
Teacher outputs are obtained in one place, ``self.teacher(key, batch)``; what the teacher cache
can store (logits, per-group B x B maps) through ``self.teacher_outputs(key, batch, kind)``,
which reads it from ``batch["teachers"]`` when the training loop put it there
(pipeline.distill.teacher_outputs, pipeline.teacher_cache). A method lists what it reads that
way in ``cache_reads``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterator, Literal, Mapping

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch import Tensor, nn
from typing_extensions import Annotated

from pipeline.errors import ParamsError
from pipeline.params import Section, validate_section

from .losses import kd_kl
from .teacher_outputs import teacher_outputs

METHODS: dict[str, type["Method"]] = {}

# Which batch key each teacher reads: teacher 1 raw inputs, teacher 2 persistence images.
TEACHER_INPUTS = {"image": "x", "topology": "pi"}

# Hyperparameter types shared by several methods: one declaration each, so that the methods'
# models agree on every key they share (pipeline.params.method_fields checks it).
Weight = Annotated[float, Field(ge=0.0, le=1.0)]
Positive = Annotated[float, Field(gt=0.0)]
NonNegative = Annotated[float, Field(ge=0.0)]


class NoParams(Section):
    """A method that reads no `distill` key."""


def register(name: str):
    """Class decorator: ``@register("kd") class KD(Method): ...``."""
    def deco(cls):
        if name in METHODS:
            raise ValueError(f"distillation method {name!r} registered twice")
        cls.name = name
        METHODS[name] = cls
        return cls
    return deco


def method_params(name: str, distill: BaseModel | Mapping | None) -> BaseModel:
    """The `distill` keys that method `name` reads, validated by its own model (missing or bad
    keys fail as one line naming `distill.<key>`)."""
    model = METHODS[name].params_model
    if isinstance(distill, BaseModel):
        distill = distill.model_dump(by_alias=True)
    keys = {f.alias or k for k, f in model.model_fields.items()}
    values = {k: v for k, v in dict(distill or {}).items() if k in keys}
    return validate_section(model, values, f"method {name}", ("distill",))


def build_method(name: str, student: nn.Module, teachers: Mapping[str, nn.Module] | None,
                 distill: BaseModel | Mapping | None = None, **kwargs: Any) -> "Method":
    """Build the registered method ``name``. ``teachers``: {"image": teacher 1, "topology":
    teacher 2}; ``distill``: the params ``distill`` section (a model or a mapping). Extra keyword
    arguments go to the method (e.g. ``input_key="pi"`` for "scratch")."""
    if name not in METHODS:
        raise ParamsError(f"distillation method {name!r} is unknown; registered methods: "
                          f"{', '.join(sorted(METHODS))}")
    return METHODS[name](student, dict(teachers or {}), method_params(name, distill), **kwargs)


def freeze(model: nn.Module) -> nn.Module:
    """Teacher: eval mode, requires_grad False on every parameter."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class Method(nn.Module):
    """Base class: subclasses set the class attributes below and implement ``forward``."""

    name: ClassVar[str] = "?"
    teacher_keys: ClassVar[tuple[str, ...]] = ()
    inputs: tuple[str, ...] = ("x",)
    params_model: ClassVar[type[Section]] = NoParams
    # What forward reads through teacher_outputs ("logits", "gram", "corr"): the teachers stage
    # stores exactly these; () = not cacheable, the teachers always run.
    cache_reads: ClassVar[tuple[str, ...]] = ()

    def __init__(self, student: nn.Module, teachers: Mapping[str, nn.Module], hparams: BaseModel):
        super().__init__()
        self.student = student
        self.hparams = hparams
        self._diagnostics: dict[str, float] = {}
        missing = [k for k in self.teacher_keys if teachers.get(k) is None]
        if missing:
            raise ParamsError(f"distillation method {self.name!r} needs teacher(s) "
                              f"{', '.join(repr(k) for k in missing)}; got "
                              f"{sorted(k for k, v in teachers.items() if v is not None) or 'none'}")
        self.teachers = nn.ModuleDict({k: freeze(teachers[k]) for k in self.teacher_keys})

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
    def teacher(self, key: str, batch: Mapping[str, Tensor]) -> tuple[Tensor, list[Tensor]]:
        """A frozen teacher's (logits, group outputs) on its input of `batch`, without gradients
        (always in eval mode). The one place a method obtains teacher outputs."""
        t = self.teachers[key]
        if t.training:
            t.eval()
        return t(self.batch_item(batch, TEACHER_INPUTS[key]))

    def teacher_outputs(self, key: str, batch: Mapping[str, Any],
                        kind: str | None = None) -> tuple[Tensor, list[Tensor] | None]:
        """Teacher `key`'s logits and, for `kind` "gram" or "corr", its per-group B x B maps of
        this batch: stored ones (the teacher cache) when the batch carries them, else computed."""
        return teacher_outputs(self, batch, key, kind)

    def diagnose(self, name: str, value: Tensor | float) -> None:
        """Record a per-batch diagnostic: logged per epoch (the batch-size-weighted mean), never
        part of the loss. Names must differ from the loss names."""
        self._diagnostics[name] = value.detach() if isinstance(value, Tensor) else float(value)

    def pop_diagnostics(self) -> dict[str, Tensor | float]:
        """The diagnostics recorded since the last call (the loop calls it after each step)."""
        recorded, self._diagnostics = self._diagnostics, {}
        return recorded

    @staticmethod
    def batch_item(batch: Mapping[str, Tensor], key: str) -> Tensor:
        if key not in batch or batch[key] is None:
            raise KeyError(f"batch has no {key!r} (keys: {sorted(batch)})")
        return batch[key]


class CEParams(Section):
    lambda_: Weight = Field(alias="lambda")  # weight of the distillation terms against CE


class LogitParams(CEParams):
    temperature: Positive
    kl_reduction: Literal["batchmean", "mean"]  # textbook | the authors' code (see losses.kd_kl)


class LogitKDMixin:
    """The CE and KL terms shared by the logit-distilling methods (needs ``CEParams`` for
    ``ce`` and ``LogitParams`` for ``kl``)."""

    def ce(self, zs: Tensor, y: Tensor) -> Tensor:
        return (1.0 - self.hparams.lambda_) * F.cross_entropy(zs, y)

    def kl(self, zs: Tensor, zt: Tensor) -> Tensor:
        """T^2 * KL(softmax(zt/T) || softmax(zs/T)) (unweighted by lambda)."""
        T = self.hparams.temperature
        return T ** 2 * kd_kl(zs, zt, T, self.hparams.kl_reduction)
