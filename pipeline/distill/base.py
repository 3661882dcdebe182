"""The Method contract (mdistiller-style) and the method registry.

A Method holds the student and its frozen teachers and declares, as class attributes:

- ``teacher_keys``: the teachers it uses, among ``TEACHER_INPUTS`` ("image": teacher 1 on raw
  inputs, "topology": teacher 2 on persistence images);
- ``inputs``: the batch keys it reads besides the labels ``y`` ("x" raw inputs, "pi" persistence
  images); the training loop builds batches with exactly these. A distillation method's are the
  student's "x" plus each of its teachers' inputs (``teacher_inputs``: teacher 2 reads "pi", or
  "x" when ``models.teacher_topology_input`` makes it a second raw-input teacher);
- ``params_model``: the model of its block ``distill.<name>`` in params.yaml (None: it reads
  none). Its DVC stage ``distill@<name>`` depends on that block only, and the method receives
  the validated block as ``self.hparams``;
- ``cache_reads``: what ``forward`` reads through ``teacher_outputs`` ("logits", "gram",
  "corr"), which the teacher cache stores; () = not cacheable, the teachers always run.

``method(batch) -> (student_logits, {"ce": ..., "kd": ..., ...})``: every value an
already-weighted scalar loss; the loop sums them and logs each name per epoch. Anything else
worth logging (e.g. a share of a merged map) goes through ``self.diagnose(name, value)``:
logged per epoch (as ``<model>_<name>``), never summed into the loss.

A method file imports no torch (every stage's params validation reads it; pipeline.lazy): its
arithmetic is ``pipeline.distill.losses``, and a Method is a plain object holding torch modules,
not a module itself. Its state is the student's (teachers are frozen and come from checkpoints).
"""
from __future__ import annotations

import pkgutil
from pathlib import Path
from typing import Any, ClassVar, Iterator, Mapping

from pydantic import BaseModel

from pipeline.errors import ParamsError
from pipeline.lazy import lazy_import
from pipeline.registry import Registry
from pipeline.schema import Section, validate_section

losses = lazy_import("pipeline.distill.losses")
outputs = lazy_import("pipeline.distill.teacher_outputs")

# One file per method in pipeline/distill/methods/, named as the method: found without importing
# them, each loaded on first lookup (training with scratch imports no other method's code, so a
# new or edited method never re-runs the teachers' DVC stages).
_METHOD_FILES = Path(__file__).with_name("methods")
METHODS = Registry("distillation method", lazy={
    m.name: f"pipeline.distill.methods.{m.name}" for m in pkgutil.iter_modules([str(_METHOD_FILES)])})

# Which batch key each teacher reads by default: teacher 1 raw inputs, teacher 2 persistence
# images (`teacher_inputs` gives a run's own, from models.teacher_topology_input).
TEACHER_INPUTS = {"image": "x", "topology": "pi"}


def teacher_inputs(models: Any = None) -> dict[str, str]:
    """Each teacher's input key for a run's `models` params: teacher 2 reads persistence images
    ("pi"), or raw inputs ("x") for the two-raw-teachers control."""
    second = getattr(models, "teacher_topology_input", None) or TEACHER_INPUTS["topology"]
    return {"image": TEACHER_INPUTS["image"], "topology": second}


def register(name: str):
    """Class decorator: ``@register("kd") class KD(Method): ...``."""
    def deco(cls):
        cls.name = name
        return METHODS.register(name)(cls)
    return deco


def method_hparams(name: str, block: BaseModel | Mapping | None) -> BaseModel | None:
    """Method `name`'s block validated by its own model (a mapping from params.yaml, or the
    already validated model); None for a method that reads no block."""
    model = METHODS.lookup(name, "distill.methods").params_model
    if model is None:
        return None
    if isinstance(block, model):
        return block
    if isinstance(block, BaseModel):
        block = block.model_dump(by_alias=True)
    return validate_section(model, block if block is not None else {}, f"method {name}", ("distill", name))


def build_method(name: str, student: Any, teachers: Mapping[str, Any] | None,
                 block: BaseModel | Mapping | None = None, **kwargs: Any) -> "Method":
    """Build the registered method ``name``. ``teachers``: {"image": teacher 1, "topology":
    teacher 2}; ``block``: its ``distill.<name>`` params (a model or a mapping). Extra keyword
    arguments go to the method (e.g. ``input_key="pi"`` for "scratch")."""
    cls = METHODS.lookup(name, "distill.methods")
    return cls(student, dict(teachers or {}), method_hparams(name, block), **kwargs)


def freeze(model: Any) -> Any:
    """Teacher: eval mode, requires_grad False on every parameter."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class Method:
    """Base class: subclasses set the class attributes below and implement ``forward``."""

    name: ClassVar[str] = "?"
    teacher_keys: ClassVar[tuple[str, ...]] = ()
    inputs: tuple[str, ...] = ("x",)
    params_model: ClassVar[type[Section] | None] = None
    cache_reads: ClassVar[tuple[str, ...]] = ()

    def __init__(self, student: Any, teachers: Mapping[str, Any], hparams: BaseModel | None,
                 teacher_inputs: Mapping[str, str] | None = None):
        self.student = student
        self.hparams = hparams
        self.epoch = 0  # the epoch being trained (start_epoch), for methods with a schedule
        self.teacher_inputs = dict(teacher_inputs or TEACHER_INPUTS)
        if self.teacher_keys:  # the student's input, then each teacher's
            self.inputs = tuple(dict.fromkeys(("x", *(self.teacher_inputs[k] for k in self.teacher_keys))))
        self._diagnostics: dict[str, Any] = {}
        missing = [k for k in self.teacher_keys if teachers.get(k) is None]
        if missing:
            raise ParamsError(f"distillation method {self.name!r} needs teacher(s) "
                              f"{', '.join(repr(k) for k in missing)}; got "
                              f"{sorted(k for k, v in teachers.items() if v is not None) or 'none'}")
        self.teachers = {k: freeze(teachers[k]) for k in self.teacher_keys}

    # -- contract ------------------------------------------------------------------------------
    def forward(self, batch: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
        raise NotImplementedError

    def __call__(self, batch: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
        return self.forward(batch)

    def start_epoch(self, epoch: int) -> None:
        """Called by the loop before each epoch (0-based): a method whose weights follow a
        schedule (dkd's warm-up) reads ``self.epoch``."""
        self.epoch = epoch

    # -- what the training loop does with it ---------------------------------------------------
    def train(self, mode: bool = True) -> "Method":
        """The student in `mode`; teachers always in eval mode."""
        self.student.train(mode)
        for t in self.teachers.values():
            t.eval()
        return self

    def eval(self) -> "Method":
        return self.train(False)

    @property
    def training(self) -> bool:
        return self.student.training

    def to(self, device: Any) -> "Method":
        self.student.to(device)
        for t in self.teachers.values():
            t.to(device)
        return self

    def state_dict(self) -> dict[str, Any]:
        """The student's state (what a resume file keeps)."""
        return self.student.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.student.load_state_dict(state)

    def student_parameters(self) -> Iterator[Any]:
        """What the optimizer updates (the student; teachers never)."""
        return self.student.parameters()

    # -- helpers -------------------------------------------------------------------------------
    def teacher(self, key: str, batch: Mapping[str, Any]) -> tuple[Any, list[Any]]:
        """A frozen teacher's (logits, group outputs) on its input of `batch`, without gradients
        (always in eval mode). The one place a method runs a teacher."""
        return outputs.run_teacher(self.teachers[key], self.batch_item(batch, self.teacher_inputs[key]))

    def teacher_outputs(self, key: str, batch: Mapping[str, Any],
                        kind: str | None = None) -> tuple[Any, list[Any] | None]:
        """Teacher `key`'s logits and, for `kind` "gram" or "corr", its per-group B x B maps of
        this batch: stored ones (the teacher cache) when the batch carries them, else computed."""
        return outputs.teacher_outputs(self, batch, key, kind)

    def diagnose(self, name: str, value: Any) -> None:
        """Record a per-batch diagnostic: logged per epoch (the batch-size-weighted mean), never
        part of the loss. Names must differ from the loss names."""
        self._diagnostics[name] = value.detach() if hasattr(value, "detach") else float(value)

    def pop_diagnostics(self) -> dict[str, Any]:
        """The diagnostics recorded since the last call (the loop calls it after each step)."""
        recorded, self._diagnostics = self._diagnostics, {}
        return recorded

    @staticmethod
    def batch_item(batch: Mapping[str, Any], key: str) -> Any:
        if key not in batch or batch[key] is None:
            raise KeyError(f"batch has no {key!r} (keys: {sorted(batch)})")
        return batch[key]


class LogitKD(Method):
    """The CE and KL terms of the logit-distilling methods (``hparams``: CEParams for ``ce``,
    LogitParams for ``kl``)."""

    def ce(self, zs: Any, y: Any) -> Any:
        return (1.0 - self.hparams.lambda_) * losses.cross_entropy(zs, y)

    def kl(self, zs: Any, zt: Any) -> Any:
        """T^2 * KL(softmax(zt/T) || softmax(zs/T)) (unweighted by lambda)."""
        T = self.hparams.temperature
        return T ** 2 * losses.kd_kl(zs, zt, T, self.hparams.kl_reduction)
