"""A training run's parts: who is trained and where (RunSpec), what its finished epochs left
(Progress), and its moving parts (Trainer). Plain records, shared by the loop and the resume file."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline import distributed
from pipeline.distill import Method
from pipeline.inputs import Inputs
from pipeline.runtime import identity_hash
from pipeline.training.batches import TeacherFeed
from pipeline.training.params import TrainParams

RESUME_FORMAT = 2  # 2: a resume file's "method" holds the student's state alone (teachers come from checkpoints)


@dataclass
class RunSpec:
    """Who is trained and where its artifacts go."""

    name: str                    # scratch, kd, tgd, teacher_image, ... (lands in metric names)
    model_meta: dict[str, Any]   # arch, in_channels, num_classes, dims, input_key
    out_dir: Path                # last.pt, best.pt, summary.json
    live_dir: Path               # DVCLive metrics.json and per-epoch plots
    resume_path: Path            # the resume file, outside the stage's outputs
    fingerprint: str             # identity of the run (params, architecture, inputs)

    @property
    def resume_fingerprint(self) -> str:
        """A resume file must match this: the run's identity and its name."""
        return identity_hash(self.name, self.fingerprint, RESUME_FORMAT)


@dataclass
class Progress:
    """What the finished epochs left: restored from a resume file or built epoch by epoch."""

    next_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_acc: float = -1.0
    best: dict[str, Any] | None = None       # the best epoch's {"meta", "state_dict"}
    last_meta: dict[str, Any] | None = None


@dataclass
class Trainer:
    """A run's moving parts: the method, its inputs, the optimiser and the process group."""

    method: Method
    inputs: Inputs
    train: TrainParams
    spec: RunSpec
    ctx: distributed.Context
    ddp: nn.Module | None            # the student in DistributedDataParallel; None alone
    optimizer: torch.optim.Optimizer
    scheduler: Any
    # the teacher cache (pipeline.teacher_cache): the batches' stored teacher outputs, put in
    # batch["teachers"]; None: the method runs its teachers
    teacher_feed: TeacherFeed | None = None

    @property
    def main(self) -> bool:
        return self.ctx.is_main
