"""The training stages' recipes: which model, which inputs, which method, where artifacts go.

Each public function is one DVC stage's work; the scripts in stages/ only parse arguments and
call these. Paths follow dvc.yaml.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline import distributed, runtime
from pipeline.checkpoint import load_model
from pipeline.distill import METHODS, build_method
from pipeline.errors import CheckpointError
from pipeline.inputs import Inputs, load_inputs
from pipeline.models import build_model
from pipeline.params import Params, section
from pipeline.train import RunSpec, fingerprint, fit, seed_everything, select_device

PREPARED = Path("data/prepared")
TOPOLOGY = Path("data/topology")
MODELS = Path("data/models")
LIVE = Path("data/live")

TEACHER_INPUT = {"image": "x", "topology": "pi"}  # teacher 1 reads raw inputs, teacher 2 PIs


def input_identity(directory: Path) -> str:
    """Cheap identity of a store folder: its summary files (shapes, counts, statistics)."""
    parts = [p.read_text() for p in sorted(directory.glob("*.json"))]
    return fingerprint(str(directory), parts)


def model_meta(arch: str, inputs: Inputs, input_key: str) -> dict[str, Any]:
    dims = 1 if (input_key == "x" and inputs.modality == "signal") else 2
    return {"arch": arch, "in_channels": inputs.shapes[input_key][0],
            "num_classes": inputs.num_classes, "dims": dims, "input_key": input_key}


def _spec(name: str, meta: dict[str, Any], *identity: Any) -> RunSpec:
    world = distributed.context().world_size
    if world > 1:  # a data-parallel run's weights differ from one process's: never resume across
        identity = (*identity, {"world_size": world})
    return RunSpec(name=name, model_meta=meta, out_dir=MODELS / name, live_dir=LIVE / name,
                   fingerprint=fingerprint(meta, *identity))


def _device(train_cfg: dict[str, Any]):
    """The training device; under torchrun, joins the process group first (nccl on GPUs, one
    GPU per local rank; gloo on CPU). A single process is untouched."""
    runtime.configure(train_cfg)  # train.threads
    return distributed.setup(select_device(train_cfg["device"]))


def _train_alone(name: str, arch: str, input_key: str, inputs: Inputs, params: Params,
                 store: Path, progress: bool, stop_after_epoch: int | None = None) -> dict[str, Any]:
    """Train one model from scratch on its own input with cross-entropy (teachers, scratch)."""
    train_cfg = section(params, "train")
    seed_everything(train_cfg["seed"])
    device = _device(train_cfg)
    meta = model_meta(arch, inputs, input_key)
    model = build_model(arch, meta["in_channels"], meta["num_classes"], dims=meta["dims"])
    method = build_method("scratch", model, {}, {}, input_key=input_key).to(device)
    runtime.prepare_models([model], train_cfg, device)  # amp, compile
    spec = _spec(name, meta, train_cfg, input_identity(store))
    inputs = runtime.prepare_inputs(inputs, train_cfg)  # channels_last PIs
    return fit(method, inputs.to(device), train_cfg, spec, keys=(input_key,), device=device,
               progress=progress, stop_after_epoch=stop_after_epoch)


def train_teacher(kind: str, params: Params, progress: bool = True,
                  stop_after_epoch: int | None = None) -> dict[str, Any]:
    """Teacher 1 (`image`, raw inputs) or teacher 2 (`topology`, persistence images)."""
    input_key = TEACHER_INPUT[kind]
    store = PREPARED if input_key == "x" else TOPOLOGY
    inputs = load_inputs(prepared_dir=store) if input_key == "x" else load_inputs(topology_dir=store)
    arch = getattr(params.models, f"teacher_{kind}")
    return _train_alone(f"teacher_{kind}", arch, input_key, inputs, params, store, progress,
                        stop_after_epoch)


def train_student(params: Params, progress: bool = True,
                  stop_after_epoch: int | None = None) -> dict[str, Any]:
    """The student trained from scratch: the baseline and the distilled students' initialisation."""
    inputs = load_inputs(prepared_dir=PREPARED)
    return _train_alone("scratch", params.models.student, "x", inputs, params, PREPARED, progress,
                        stop_after_epoch)


def load_teachers(params: Params) -> dict[str, tuple[Any, dict[str, Any]]]:
    teachers = {}
    for kind, input_key in TEACHER_INPUT.items():
        arch = getattr(params.models, f"teacher_{kind}")
        teachers[kind] = load_model(MODELS / f"teacher_{kind}" / "last.pt",
                                    expect={"arch": arch, "input_key": input_key})
    return teachers


def distill(method_name: str, params: Params, progress: bool = True,
            stop_after_epoch: int | None = None) -> dict[str, Any]:
    """A student distilled from the frozen teachers with `method_name` (kd, sp, tgd, tpkd, ...)."""
    from pipeline import teacher_cache  # here, not at the top: teacher_cache imports this module

    train_cfg, distill_cfg = section(params, "train"), section(params, "distill")
    seed_everything(train_cfg["seed"])
    device = _device(train_cfg)
    teachers = load_teachers(params)
    method_class = METHODS.get(method_name)
    feed = teacher_cache.feed_for(method_class, params, teachers, device) if method_class else None
    # with the cache, the teachers do not run: the persistence images are not even loaded
    inputs = load_inputs(prepared_dir=PREPARED, topology_dir=None if feed else TOPOLOGY)
    meta = model_meta(params.models.student, inputs, "x")
    for kind, (teacher, teacher_meta) in teachers.items():
        wanted = meta["num_classes"]
        if teacher_meta["num_classes"] != wanted:
            raise CheckpointError(f"{MODELS / f'teacher_{kind}'}: teacher has {teacher_meta['num_classes']} "
                             f"classes, the data {wanted}; re-run train_teacher@{kind}")
    student = build_model(meta["arch"], meta["in_channels"], meta["num_classes"], dims=meta["dims"])
    init = "random"
    if distill_cfg["anneal"]:
        # "Annealing": start from the scratch student's weights instead of random ones.
        scratch, _ = load_model(MODELS / "scratch" / "last.pt", expect={k: meta[k] for k in
                                ("arch", "in_channels", "num_classes", "dims")})
        student.load_state_dict(scratch.state_dict())
        init = "scratch"
    method = build_method(method_name, student, {k: m for k, (m, _) in teachers.items()}, distill_cfg)
    runtime.prepare_models([student, *method.teachers.values()], train_cfg, device)  # amp, compile
    keys = ("x", "pi") if getattr(method, "needs_pi", True) and feed is None else ("x",)
    teacher_ids = [m.get("fingerprint") for _, m in teachers.values()]
    spec = _spec(method_name, {**meta, "method": method_name, "init": init},
                 train_cfg, distill_cfg, teacher_ids, input_identity(PREPARED), input_identity(TOPOLOGY))
    inputs = runtime.prepare_inputs(inputs, train_cfg)  # channels_last PIs
    return fit(method.to(device), inputs.to(device), train_cfg, spec, keys=keys, device=device,
               progress=progress, stop_after_epoch=stop_after_epoch, teacher_feed=feed)
