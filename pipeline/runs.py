"""The recipes of the stages that train a model alone (the teachers, the scratch student): which
model, which inputs, where artifacts go. Distillation is pipeline.distill_runs.

Each public function is one DVC stage's work; the scripts in stages/ only parse arguments and
call these. Paths come from pipeline.layout. This module imports no distillation method but
scratch, so editing or adding a method never re-runs these stages (their code deps in dvc.yaml).
"""
from __future__ import annotations

from typing import Any

from pipeline import distributed, layout
from pipeline.distill import build_method, teacher_inputs
from pipeline.models import build_model
from pipeline.params import Params
from pipeline.runtime import identity_hash, prepare_inputs, prepare_models
from pipeline.training.loop import fit
from pipeline.training.state import RunSpec
from pipeline.training.setup import STORES, input_identity, load_run_inputs, model_meta, start


def run_spec(name: str, meta: dict[str, Any], *identity: Any) -> RunSpec:
    world = distributed.context().world_size
    if world > 1:  # a data-parallel run's weights differ from one process's: never resume across
        identity = (*identity, {"world_size": world})
    return RunSpec(name=name, model_meta=meta, out_dir=layout.model_dir(name),
                   live_dir=layout.live_dir(name), resume_path=layout.RESUME / f"{name}.pt",
                   fingerprint=identity_hash(meta, *identity))


# A raw-input teacher 2 (models.teacher_topology_input: x) trains with its own seed, so that it is
# another network than teacher 1 even with the same architecture (init and batch order differ).
RAW_TEACHER2_SEED_OFFSET = 1


def _train_alone(name: str, arch: str, input_key: str, params: Params, seed_offset: int = 0) -> dict[str, Any]:
    """Train one model from scratch on its own input with cross-entropy (teachers, scratch)."""
    train = params.train.model_copy(update={"seed": params.train.seed + seed_offset})
    device = start(params, train.seed)
    inputs = load_run_inputs((input_key,))
    meta = model_meta(arch, inputs, input_key)
    model = build_model(arch, meta["in_channels"], meta["num_classes"], dims=meta["dims"])
    method = build_method("scratch", model, {}, input_key=input_key).to(device)
    prepare_models([model], train, device)  # amp, compile
    spec = run_spec(name, meta, train.model_dump(), input_identity(STORES[input_key]))
    return fit(method, prepare_inputs(inputs, train).to(device), train, spec, device)


def train_teacher(kind: str, params: Params) -> dict[str, Any]:
    """Teacher 1 (`image`, raw inputs) or teacher 2 (`topology`: persistence images, or raw
    inputs with its own seed when models.teacher_topology_input is x)."""
    arch = getattr(params.models, f"teacher_{kind}")
    input_key = teacher_inputs(params.models)[kind]
    offset = RAW_TEACHER2_SEED_OFFSET if (kind, input_key) == ("topology", "x") else 0
    return _train_alone(f"teacher_{kind}", arch, input_key, params, offset)


def train_student(params: Params) -> dict[str, Any]:
    """The student trained from scratch: the baseline and the distilled students' initialisation."""
    return _train_alone("scratch", params.models.student, "x", params)
