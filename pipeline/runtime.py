"""Run set-up, in one place: the device, seeding, threads and run fingerprints, and how a run
uses the hardware at hand.

Every stage that trains or evaluates a model starts here. Seeding is the whole reproducibility
story of a CPU run: one seed for the run (`seed_everything`), then each epoch re-seeds the global
RNGs and draws its shuffling from a generator of its own (`seed_epoch`, `epoch_generator`), so an
epoch does not depend on how earlier epochs ran and a resumed run draws what an uninterrupted
one draws.

The speed switches (`train.*`; none changes the recipe, figures in docs/scaling.md):

- ``threads``: torch's intra-op threads per process (``torch.set_num_threads``); 0 keeps
  torch's default (one per core).
- ``channels_last``: persistence images (N, K, R, R) held in channels-last (NHWC) memory, as
  the raw images already are (their uint8 store is NHWC), so convolutions take the NHWC
  kernels. Changes float rounding only.
- ``amp`` (CUDA only; ignored on CPU): the models' forward passes under bf16 autocast; logits
  and group outputs come back as float32, so the losses and maps stay float32.
- ``compile``: ``torch.compile`` of the models (in place: checkpoints keep their keys).

Inputs stay resident on the training device (``Inputs.to``: one copy at the start, batches are
cut and normalised there); the teacher cache's per-epoch maps are copied from pinned memory.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import random
import types
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import numpy as np
import torch

from pipeline.errors import CheckpointError

if TYPE_CHECKING:
    from pipeline.inputs import Inputs
    from pipeline.training.params import TrainParams


def select_device(name: str) -> torch.device:
    """`train.device`: auto (CUDA when present), cpu or cuda."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise CheckpointError("train.device=cuda but no CUDA device is available")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch, and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """Shuffling and augmentation randomness of one epoch, independent of earlier epochs."""
    generator = torch.Generator(device="cpu")
    generator.manual_seed(epoch_seed(seed, epoch))
    return generator


def seed_epoch(seed: int, epoch: int) -> None:
    """Re-seed the global RNGs (dropout, random draws inside methods) for one epoch, so that a
    run resumed at this epoch draws exactly what an uninterrupted run draws."""
    value = epoch_seed(seed, epoch) + 1  # distinct from the shuffling generator's stream
    random.seed(value)
    np.random.seed(value % 2**32)
    torch.manual_seed(value)


def identity_hash(*parts: Any) -> str:
    """A stable short hash of JSON-able parts (params, architecture, input identity, a name)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to `n` for a block, then restored. CPU results are
    bit-identical only for a fixed thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# -- the hardware at hand ------------------------------------------------------------------------

def set_threads(train: "TrainParams") -> None:
    """`train.threads` for this process (0: torch's own default, untouched)."""
    if train.threads:
        torch.set_num_threads(train.threads)


def prepare_inputs(inputs: "Inputs", train: "TrainParams") -> "Inputs":
    """Persistence images in channels-last memory when `train.channels_last` (batches cut from
    them keep that layout)."""
    if train.channels_last:
        for tensors in inputs.splits.values():
            if "pi" in tensors and tensors["pi"].dim() == 4:
                tensors["pi"] = tensors["pi"].contiguous(memory_format=torch.channels_last)
    return inputs


def _autocast_forward(self: torch.nn.Module, x: torch.Tensor):
    """The model's own forward under bf16 autocast; outputs back to float32."""
    with torch.autocast(device_type=self.autocast_device, dtype=torch.bfloat16):
        logits, feats = type(self).forward(self, x)
    return logits.float(), [f.float() for f in feats]


def autocast_bf16(model: torch.nn.Module, device_type: str = "cuda") -> torch.nn.Module:
    """Run `model`'s forward under bf16 autocast on `device_type`, in place. A bound method on
    the instance: state_dict keys stay, and copy.deepcopy rebinds it to the copy."""
    model.autocast_device = device_type
    model.forward = types.MethodType(_autocast_forward, model)
    return model


def prepare_models(models: Iterable[torch.nn.Module], train: "TrainParams",
                   device: torch.device) -> None:
    """bf16 autocast (`train.amp`, CUDA only) and torch.compile (`train.compile`) of each model,
    in place: parameters, state_dict keys and checkpoints are unchanged."""
    for model in models:
        if train.amp and device.type == "cuda":
            autocast_bf16(model, "cuda")
        if train.compile:
            model.compile()
