"""Where the tasks run: joblib's local processes (loky) or a Dask cluster (topology.backend)."""
from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

import joblib

from pipeline.errors import TopologyError


@contextlib.contextmanager
def parallel_backend(cfg: dict[str, Any]) -> Iterator[int]:
    """joblib's backend for the tasks: local processes (loky) or a Dask cluster. Yields n_jobs."""
    n_jobs = cfg["n_jobs"] if cfg["n_jobs"] > 0 else (os.cpu_count() or 1)
    if cfg["backend"] == "loky":
        with joblib.parallel_config(backend="loky", n_jobs=n_jobs, inner_max_num_threads=1):
            yield n_jobs
        return
    from dask.distributed import Client, LocalCluster

    if cfg.get("scheduler"):
        with _connect(cfg["scheduler"]) as client, joblib.parallel_config(backend="dask"):
            yield sum(client.nthreads().values())
    else:
        with LocalCluster(n_workers=n_jobs, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster), \
                joblib.parallel_config(backend="dask"):
            yield n_jobs


def _connect(address: str):
    """A Dask client of the scheduler at `address`; an unreachable one is one TopologyError."""
    from dask.distributed import Client

    try:
        return Client(address)
    except OSError as error:  # refused, timed out, unknown host: dask raises OSError for each
        raise TopologyError(f"topology.scheduler {address}: cannot connect ({error}); start "
                            "`dask scheduler` there, or set topology.scheduler: null for a local cluster") from None
