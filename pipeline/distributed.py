"""Data-parallel training with torch.distributed, when a stage is launched by torchrun.

    torchrun --nproc_per_node=2 -m stages.train_student

torchrun starts one process per rank and sets RANK, WORLD_SIZE and LOCAL_RANK; `setup` joins
the process group (nccl on GPUs, gloo on CPU) and gives each rank its device. Without torchrun
(WORLD_SIZE unset or 1) every function here is a no-op and training runs exactly as before.

The scheme (pipeline.train.fit):
- every rank loads the same inputs and draws the same epoch permutation (seeded by epoch), so
  the global batches are those of a single-process run; each global batch of `batch_size`
  samples is split into `world_size` contiguous shares (`share`), one per rank. The global batch
  size, the number of optimiser steps and the learning rate keep their single-process meaning;
- only the student is wrapped in DistributedDataParallel (teachers are frozen: nothing to
  synchronise). DDP averages the gradients over ranks; each rank's loss is weighted by
  `len(share) * world_size / len(batch)` so that the average is the gradient of the global
  batch's mean loss even when the last batch does not split evenly;
- BatchNorm normalises each rank's share with that share's statistics (SyncBatchNorm needs
  GPUs; see docs/scaling.md), and DDP broadcasts rank 0's running statistics before each
  forward pass;
- loss sums, correct counts and the test accuracy are summed over ranks (`all_reduce_sum`);
- only rank 0 (`is_main`) writes checkpoints, DVCLive logs, the resume file and the summary.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import sys
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence, TypeVar

import torch
import torch.distributed as dist
from torch import nn

T = TypeVar("T")


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = Context()


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def context() -> Context:
    """This process's place in the process group (SINGLE when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return SINGLE
    return Context(dist.get_rank(), dist.get_world_size(),
                   int(os.environ.get("LOCAL_RANK", "0")), dist.get_backend())


def init_from_env(device: torch.device | str = "cpu") -> Context:
    """Join torchrun's process group (env:// rendezvous); a no-op when WORLD_SIZE is unset or 1.

    The backend is nccl for a CUDA device and gloo otherwise.
    """
    if env_world_size() <= 1:
        return SINGLE
    if dist.is_initialized():
        return context()
    device = torch.device(device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    atexit.register(shutdown)
    return context()


def setup(device: torch.device) -> torch.device:
    """Join the process group when launched by torchrun; the device this rank trains on."""
    ctx = init_from_env(device)
    if ctx.active and device.type == "cuda":
        return torch.device("cuda", ctx.local_rank)
    return device


def relaunch(nproc: int, module: str, argv: Sequence[str]) -> None:
    """Re-run this stage as `torchrun --standalone --nproc_per_node=nproc -m module argv`.

    For `train.nproc > 1` under `dvc repro`: the stage command in dvc.yaml stays
    `python -m stages.<stage>`, and the process replaces itself with torchrun, whose ranks see
    WORLD_SIZE and train. Does nothing when nproc is 1 or when already launched by torchrun
    (WORLD_SIZE set), e.g. by a user's own multi-node torchrun command.
    """
    if nproc <= 1 or "WORLD_SIZE" in os.environ:
        return
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", "-m", module, *argv]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_main() -> bool:
    return context().is_main


def barrier() -> None:
    if context().active:
        dist.barrier()


def share(n: int, ctx: Context) -> slice:
    """This rank's contiguous part of a global batch of n samples (torch.tensor_split's sizes)."""
    base, extra = divmod(n, ctx.world_size)
    start = ctx.rank * base + min(ctx.rank, extra)
    return slice(start, start + base + (1 if ctx.rank < extra else 0))


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """Sums over ranks of a list of numbers (float64); the list itself when not distributed."""
    ctx = context()
    if not ctx.active:
        return list(values)
    device = torch.device("cuda", torch.cuda.current_device()) if ctx.backend == "nccl" else "cpu"
    tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def from_main(load: Callable[[], T]) -> T:
    """`load()` run on rank 0 alone and its result sent to every rank (any picklable value), so
    that files only rank 0 sees reach all; just `load()` when not distributed."""
    if not context().active:
        return load()
    box = [load() if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap(model: nn.Module, device: torch.device) -> nn.Module | None:
    """`model` in DistributedDataParallel when distributed; None otherwise."""
    if not context().active:
        return None
    import warnings

    from torch.nn.parallel import DistributedDataParallel

    # 1x1 convolutions' gradients come channels-last while DDP's buckets are contiguous: DDP
    # copies them (correct, slightly slower); the warning says just that, once per process.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


@contextlib.contextmanager
def student_wrapped(method: nn.Module, ddp: nn.Module | None) -> Iterator[None]:
    """Run `method`'s forward through the DDP wrapper of its student.

    The wrapper is swapped in for the forward pass only, so the method's state_dict, resume
    files and checkpoints keep the plain student's keys (no `module.` prefix). The backward
    pass needs no swap: DDP's hooks sit on the parameters.
    """
    if ddp is None:
        yield
        return
    plain = method.student
    method.student = ddp
    try:
        yield
    finally:
        method.student = plain


def broadcast_buffers(model: nn.Module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank, e.g. before evaluating."""
    if not context().active:
        return
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)


class NullLive:
    """DVCLive's interface for ranks other than 0: logs nothing."""

    def log_metric(self, *args, **kwargs) -> None:
        pass

    def next_step(self) -> None:
        pass

    def end(self) -> None:
        pass
