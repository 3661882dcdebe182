"""What every training stage does first: seeds and the device, its inputs, the teachers.

Shared by the training recipes (pipeline.runs) and the teacher cache (pipeline.teacher_cache),
which both import it; neither imports the other's internals.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pipeline import distributed, layout
from pipeline.checkpoint import load_model
from pipeline.distill import teacher_inputs
from pipeline.errors import CheckpointError
from pipeline.inputs import Inputs, load_inputs
from pipeline.params import Params
from pipeline.runtime import identity_hash, seed_everything, select_device, set_threads
from pipeline.store import content_digest

STORES = {"x": layout.PREPARED, "pi": layout.TOPOLOGY}  # where each kind of input lives


def start(params: Params, seed: int | None = None) -> torch.device:
    """Run set-up of a training stage: seeds (`seed`, else train.seed), then the device; under
    torchrun, joins the process group first (nccl on GPUs, one GPU per local rank; gloo on CPU)."""
    seed_everything(params.train.seed if seed is None else seed)
    set_threads(params.train)
    return distributed.setup(select_device(params.train.device))


def input_identity(directory: Path) -> str:
    """Identity of a store folder (data/prepared, data/topology): a content hash of every file in
    it (pipeline.store.content_digest: the stores' zarr.json metadata, so each array's dtype and
    shape, and their shard files, so the samples themselves), computed once per process."""
    return identity_hash(str(directory), content_digest(directory))


def load_run_inputs(keys: tuple[str, ...]) -> Inputs:
    """The stores holding `keys` ("x" raw inputs, "pi" persistence images), preloaded."""
    return load_inputs(prepared_dir=STORES["x"] if "x" in keys else None,
                       topology_dir=STORES["pi"] if "pi" in keys else None)


def model_meta(arch: str, inputs: Inputs, input_key: str) -> dict[str, Any]:
    """What a checkpoint records of its model: architecture, input channels, classes, dims."""
    dims = 1 if (input_key == "x" and inputs.modality == "signal") else 2
    return {"arch": arch, "in_channels": inputs.shapes[input_key][0],
            "num_classes": inputs.num_classes, "dims": dims, "input_key": input_key}


def load_teachers(params: Params, num_classes: int) -> dict[str, tuple[torch.nn.Module, dict[str, Any]]]:
    """Both trained teachers, checked against params and the data's class count."""
    teachers = {}
    for kind, input_key in teacher_inputs(params.models).items():
        arch = getattr(params.models, f"teacher_{kind}")
        path = layout.model_dir(f"teacher_{kind}") / "last.pt"
        teacher, meta = load_model(path, expect={"arch": arch, "input_key": input_key})
        if meta["num_classes"] != num_classes:
            raise CheckpointError(f"{path.parent}: teacher has {meta['num_classes']} classes, the "
                                  f"data {num_classes}; re-run train_teacher@{kind}")
        teachers[kind] = (teacher, meta)
    return teachers
