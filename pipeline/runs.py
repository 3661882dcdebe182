"""The training stages' recipes: which model, which inputs, which method, where artifacts go.

Each public function is one DVC stage's work; the scripts in stages/ only parse arguments and
call these. Paths come from pipeline.layout.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pipeline import distributed, layout
from pipeline.checkpoint import load_model
from pipeline.distill import TEACHER_INPUTS, Method, build_method, method_params
from pipeline.errors import CheckpointError
from pipeline.inputs import Inputs, load_inputs
from pipeline.models import build_model
from pipeline.params import Params
from pipeline.runtime import (fingerprint, prepare_inputs, prepare_models, seed_everything, select_device,
                              set_threads)
from pipeline.store import write_json
from pipeline.train import RunSpec, fit

STORES = {"x": layout.PREPARED, "pi": layout.TOPOLOGY}  # where each kind of input lives


def input_identity(directory: Path) -> str:
    """Cheap identity of a store folder: its summary files (shapes, counts, statistics)."""
    parts = [p.read_text() for p in sorted(directory.glob("*.json"))]
    return fingerprint(str(directory), parts)


def load_run_inputs(keys: tuple[str, ...]) -> Inputs:
    """The stores holding `keys` ("x" raw inputs, "pi" persistence images), preloaded."""
    return load_inputs(prepared_dir=STORES["x"] if "x" in keys else None,
                       topology_dir=STORES["pi"] if "pi" in keys else None)


def model_meta(arch: str, inputs: Inputs, input_key: str) -> dict[str, Any]:
    dims = 1 if (input_key == "x" and inputs.modality == "signal") else 2
    return {"arch": arch, "in_channels": inputs.shapes[input_key][0],
            "num_classes": inputs.num_classes, "dims": dims, "input_key": input_key}


def run_spec(name: str, meta: dict[str, Any], *identity: Any) -> RunSpec:
    world = distributed.context().world_size
    if world > 1:  # a data-parallel run's weights differ from one process's: never resume across
        identity = (*identity, {"world_size": world})
    return RunSpec(name=name, model_meta=meta, out_dir=layout.model_dir(name),
                   live_dir=layout.live_dir(name), resume_path=layout.RESUME / f"{name}.pt",
                   fingerprint=fingerprint(meta, *identity))


def start(params: Params) -> torch.device:
    """Run set-up of a training stage: seeds, then the device; under torchrun, joins the
    process group first (nccl on GPUs, one GPU per local rank; gloo on CPU)."""
    seed_everything(params.train.seed)
    set_threads(params.train)
    return distributed.setup(select_device(params.train.device))


def _train_alone(name: str, arch: str, input_key: str, params: Params) -> dict[str, Any]:
    """Train one model from scratch on its own input with cross-entropy (teachers, scratch)."""
    device = start(params)
    inputs = load_run_inputs((input_key,))
    meta = model_meta(arch, inputs, input_key)
    model = build_model(arch, meta["in_channels"], meta["num_classes"], dims=meta["dims"])
    method = build_method("scratch", model, {}, input_key=input_key).to(device)
    prepare_models([model], params.train, device)  # amp, compile
    spec = run_spec(name, meta, params.train.model_dump(), input_identity(STORES[input_key]))
    return fit(method, prepare_inputs(inputs, params.train).to(device), params.train, spec, device)


def train_teacher(kind: str, params: Params) -> dict[str, Any]:
    """Teacher 1 (`image`, raw inputs) or teacher 2 (`topology`, persistence images)."""
    arch = getattr(params.models, f"teacher_{kind}")
    return _train_alone(f"teacher_{kind}", arch, TEACHER_INPUTS[kind], params)


def train_student(params: Params) -> dict[str, Any]:
    """The student trained from scratch: the baseline and the distilled students' initialisation."""
    return _train_alone("scratch", params.models.student, "x", params)


def load_teachers(params: Params, num_classes: int) -> dict[str, tuple[torch.nn.Module, dict[str, Any]]]:
    """Both trained teachers, checked against params and the data's class count."""
    teachers = {}
    for kind, input_key in TEACHER_INPUTS.items():
        arch = getattr(params.models, f"teacher_{kind}")
        path = layout.model_dir(f"teacher_{kind}") / "last.pt"
        teacher, meta = load_model(path, expect={"arch": arch, "input_key": input_key})
        if meta["num_classes"] != num_classes:
            raise CheckpointError(f"{path.parent}: teacher has {meta['num_classes']} classes, the "
                                  f"data {num_classes}; re-run train_teacher@{kind}")
        teachers[kind] = (teacher, meta)
    return teachers


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
    from pipeline import teacher_cache  # here, not at the top: teacher_cache imports this module

    device = start(params)
    feed = teacher_cache.feed_for(method_name, params, device)  # None: the teachers run (logged)
    inputs = load_run_inputs(("x",) if feed else ("x", "pi"))  # cached: no PIs needed
    meta = model_meta(params.models.student, inputs, "x")
    teachers = load_teachers(params, meta["num_classes"])
    student, init = initial_student(params, meta)
    method: Method = build_method(method_name, student, {k: m for k, (m, _) in teachers.items()},
                                  params.distill)
    if feed:  # the teachers do not run: batches carry their stored outputs, no PIs
        method.inputs = ("x",)
    prepare_models([student, *method.teachers.values()], params.train, device)  # amp, compile
    teacher_ids = [m.get("fingerprint") for _, m in teachers.values()]
    spec = run_spec(method_name, {**meta, "method": method_name, "init": init},
                    params.train.model_dump(), params.distill.model_dump(by_alias=True), teacher_ids,
                    input_identity(STORES["x"]), input_identity(STORES["pi"]))
    inputs = prepare_inputs(inputs, params.train).to(device)
    return fit(method.to(device), inputs, params.train, spec, device, teacher_feed=feed)


def write_method_params(params: Params) -> dict[str, dict[str, Any]]:
    """`data/method_params/<method>.json`: the `distill` keys each method reads, with their
    values. Each `distill@<method>` stage depends on its own file, so editing a key re-runs only
    the methods that read it (`distill.alpha`: tgd and tpkd, never kd or sp)."""
    values = {}
    for name in params.distill.methods:
        values[name] = method_params(name, params.distill).model_dump(by_alias=True)
        write_json(layout.METHOD_PARAMS / f"{name}.json", values[name])
    return values
