"""How the benchmarks time: one core for the engines, best-of and median [range] figures, a
clock that waits for the GPU."""
from __future__ import annotations

import contextlib
import time
from statistics import median


@contextlib.contextmanager
def one_core():
    """Limit BLAS/OpenMP pools (threadpoolctl) and numba to one thread."""
    try:
        from threadpoolctl import threadpool_limits
        ctx = threadpool_limits(limits=1)
    except ImportError:  # pragma: no cover
        ctx = contextlib.nullcontext()
    with ctx:
        try:
            import numba
            numba.set_num_threads(1)
        except Exception:  # pragma: no cover
            pass
        yield


def timed(fn, repeat: int = 1):
    """(fn's last result, its best wall time in seconds over `repeat` calls)."""
    best = float("inf")
    out = None
    for _ in range(repeat):
        started = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - started)
    return out, best


def clock(device) -> float:
    """perf_counter once the device's queued work is done (CUDA runs asynchronously)."""
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)
    return time.perf_counter()


def cell(values: list[float]) -> str:
    """A table cell: the median and [the range] of a benchmark's runs."""
    return f"{median(values):7.2f} [{min(values):.2f}-{max(values):.2f}]"
