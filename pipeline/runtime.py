"""Run set-up, in one place: the device, seeding, threads and run fingerprints.

Every stage that trains or evaluates a model starts here. Seeding is the whole reproducibility
story of a CPU run: one seed for the run (`seed_everything`), then each epoch re-seeds the global
RNGs and draws its shuffling from a generator of its own (`seed_epoch`, `epoch_generator`), so an
epoch does not depend on how earlier epochs ran and a resumed run draws what an uninterrupted
one draws.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import random
from typing import Any, Iterator

import numpy as np
import torch

from pipeline.errors import CheckpointError


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


def fingerprint(*parts: Any) -> str:
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
