"""`ddp`: ms per training step (forward, backward, Adam) of a model on one global batch, in one
process and in N gloo processes (DistributedDataParallel on the CPU), and the speed-up."""
from __future__ import annotations

import os
import socket
import time


def _worker(rank: int, world: int, port: int, arch: str, batch: int, steps: int, warmup: int,
            channels: int, out) -> None:
    """One rank of the ddp benchmark (torch.multiprocessing.spawn target)."""
    import torch

    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    from pipeline import distributed
    from pipeline.distill import build_method
    from pipeline.models import build_model
    from pipeline.training.loop import train_step

    ctx = distributed.init_from_env("cpu")
    torch.manual_seed(0)
    student = build_model(arch, channels, 10)
    method = build_method("scratch", student, {})
    optimizer = torch.optim.Adam(student.parameters(), lr=5e-4)
    ddp = distributed.wrap(student, torch.device("cpu"))
    generator = torch.Generator().manual_seed(1)
    data = {"x": torch.randn(batch, channels, 32, 32, generator=generator),
            "y": torch.randint(0, 10, (batch,), generator=generator)}
    times = []
    for step in range(warmup + steps):
        started = time.perf_counter()
        train_step(method, ddp, data, optimizer, ctx)  # one process: the world-size-1 case
        if step >= warmup:
            times.append(time.perf_counter() - started)
    if rank == 0:
        out.put(sorted(times)[len(times) // 2])
    distributed.shutdown()


def _free_port() -> int:
    """A free port for one process group's rendezvous."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_ddp(arch: str, batch: int, steps: int, worlds: list[int], channels: int = 3) -> dict:
    import torch.multiprocessing as mp

    res: dict = {"arch": arch, "batch": batch, "steps": steps, "channels": channels, "ms": {}}
    context = mp.get_context("spawn")
    for world in worlds:
        queue = context.SimpleQueue()
        mp.spawn(_worker, args=(world, _free_port(), arch, batch, steps, 3, channels, queue), nprocs=world)
        res["ms"][world] = 1e3 * queue.get()
    return res


def print_ddp(r: dict) -> None:
    print(f"ddp benchmark: {r['arch']}, global batch {r['batch']} of {r['channels']}x32x32, median of "
          f"{r['steps']} steps (forward + backward + Adam), 1 thread per process, gloo on CPU")
    base = r["ms"][min(r["ms"])]
    print(f"  {'processes':<10}{'ms/step':>10}{'per-rank batch':>16}{'speed-up':>10}")
    for world, ms in r["ms"].items():
        print(f"  {world:<10}{ms:>10.1f}{r['batch'] // world:>16}{base / ms:>9.2f}x")
