"""The training stages' recipes: which model, which inputs, which method, where artifacts go.

Each public function is one DVC stage's work; the scripts in stages/ only parse arguments and
call these. Paths come from pipeline.layout.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pipeline import distributed, layout, teacher_cache
from pipeline.checkpoint import load_model
from pipeline.distill import Method, build_method, teacher_inputs
from pipeline.models import build_model
from pipeline.params import Params
from pipeline.runtime import identity_hash, prepare_inputs, prepare_models
from pipeline.training.loop import fit
from pipeline.training.state import RunSpec
from pipeline.training.setup import (STORES, input_identity, load_run_inputs, load_teachers, model_meta,
                                     start)


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


def initial_student(params: Params, meta: dict[str, Any]) -> tuple[torch.nn.Module, str]:
    """The student to distil: the scratch student's weights ("annealing") or random ones."""
    student = build_model(meta["arch"], meta["in_channels"], meta["num_classes"], dims=meta["dims"])
    if not params.distill.anneal:
        return student, "random"
    expect = {k: meta[k] for k in ("arch", "in_channels", "num_classes", "dims")}
    scratch, _ = load_model(layout.model_dir("scratch") / "last.pt", expect=expect)
    student.load_state_dict(scratch.state_dict())
    return student, "scratch"


def distill(method_name: str, params: Params) -> dict[str, Any]:
    """A student distilled from the frozen teachers with `method_name` (kd, sp, tgd, tpkd, ...)."""
    device = start(params)
    feed = teacher_cache.feed_for(method_name, params, device)  # None: the teachers run (logged)
    keys = ("x",) if feed else tuple(dict.fromkeys(("x", *teacher_inputs(params.models).values())))
    inputs = load_run_inputs(keys)  # cached: no PIs needed
    meta = model_meta(params.models.student, inputs, "x")
    teachers = load_teachers(params, meta["num_classes"])
    student, init = initial_student(params, meta)
    block = params.distill.block(method_name)
    method: Method = build_method(method_name, student, {k: m for k, (m, _) in teachers.items()}, block,
                                  teacher_inputs=teacher_inputs(params.models))
    if feed:  # the teachers do not run: batches carry their stored outputs, no PIs
        method.inputs = ("x",)
    prepare_models([student, *method.teachers.values()], params.train, device)  # amp, compile
    teacher_ids = [m.get("fingerprint") for _, m in teachers.values()]
    spec = run_spec(method_name, {**meta, "method": method_name, "init": init},
                    params.train.model_dump(), block.model_dump(by_alias=True) if block else None, teacher_ids,
                    input_identity(STORES["x"]), input_identity(STORES["pi"]))
    inputs = prepare_inputs(inputs, params.train).to(device)
    return fit(method.to(device), inputs, params.train, spec, device, teacher_feed=feed)
