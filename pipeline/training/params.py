"""params.yaml's `train` section: the optimiser, the schedule, the seed and the hardware switches."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipeline.schema import Section

MAX_SEED = 2**32 - 1  # numpy's limit (torch takes more); seeds outside fail here, not mid-run


class TrainParams(Section):
    optimizer: Literal["adam", "sgd"]
    lr: float = Field(gt=0.0)
    weight_decay: float = Field(ge=0.0)
    momentum: float = Field(ge=0.0, lt=1.0)
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    schedule: Literal["none", "cosine", "step"]
    milestones: list[int]
    lr_decay: float = Field(gt=0.0, le=1.0)
    augment: bool
    seed: int = Field(ge=0, le=MAX_SEED)
    device: Literal["auto", "cpu", "cuda"]
    num_workers: int = Field(ge=0)
    nproc: int = Field(gt=0)  # processes (ranks) on this node; > 1 relaunches under torchrun
    threads: int = Field(ge=0)  # torch threads per process; 0 = torch's default (pipeline.runtime)
    channels_last: bool         # persistence images in NHWC memory
    amp: bool                   # bf16 autocast of the forward passes on CUDA (ignored on CPU)
    compile: bool               # torch.compile the models

    @model_validator(mode="after")
    def _milestones(self) -> "TrainParams":
        bad = [m for m in self.milestones if not 0 < m < self.epochs]
        if bad:
            raise ValueError(f"milestones must lie in (0, epochs={self.epochs}), got {bad}")
        return self
