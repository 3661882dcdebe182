"""The topology stage's driver, `compute_topology`: plan, run the tasks in parallel, publish."""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import joblib
from tqdm.auto import tqdm

from pipeline import locations
from pipeline.errors import TopologyError
from pipeline.layout import STAGING
from pipeline.staging import Staging, open_staging
from pipeline.store import SPLITS, open_split, split_path, tree_digest
import pipeline.topology_stage.publish as publish
from pipeline.topology_stage.backends import parallel_backend
from pipeline.topology_stage.blocks import pi_shape, recipe_for, warm_up
from pipeline.topology_stage.checks import check_sizes
from pipeline.topology_stage.planning import plan_tasks, unfinished
from pipeline.topology_stage.statistics import STATS
from pipeline.topology_stage.task import run_task

DEFAULT_STAGING = STAGING / "topology"
# 2: training shards' sums in stats/; 3: with their degenerate-PI counts (an older staging folder is discarded)
STAGING_LAYOUT = 3


def staging_identity(prepared_dir: Path | str, modality: str, engine: str, recipe: dict[str, Any],
                     dtype: str = "float32") -> str:
    """Identity of the work in a staging folder: recipe, stored dtype, staging layout, inputs."""
    ident = {"modality": modality, "engine": engine, "recipe": recipe, "dtype": dtype, "layout": STAGING_LAYOUT,
             "inputs": {s: tree_digest(split_path(prepared_dir, s)) for s in SPLITS}}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


def _absolute(location: str | Path) -> str | Path:
    """A URL as it is, a local path made absolute (tasks may run in another current folder)."""
    return location if locations.is_url(location) else Path(location).absolute()


def _default_staging(out_dir: str | Path) -> str | Path:
    """data/.staging/topology for a local output, `<out_dir>.staging` beside a URL output."""
    return str(out_dir).rstrip("/") + ".staging" if locations.is_url(out_dir) else DEFAULT_STAGING


def compute_topology(prepared_dir: str | Path, out_dir: str | Path, cfg: dict[str, Any],
                     staging: str | Path | None = None, progress: bool = True,
                     print_fn=print) -> dict[str, Any]:
    """Persistence images of both splits of `prepared_dir` into `out_dir`; returns a summary.

    Each location is a local path or an fsspec URL. `staging` defaults to
    data/.staging/topology for a local `out_dir` and to `<out_dir>.staging` for a URL.
    """
    shown = staging if staging is not None else _default_staging(out_dir)  # messages name it as given
    prepared_dir, out_dir, root = (_absolute(p) for p in (prepared_dir, out_dir, shown))
    sources = {s: open_split(split_path(prepared_dir, s)) for s in SPLITS}
    modality = sources["train"].attrs["modality"]
    recipe = recipe_for(cfg, modality)
    engine, dtype = cfg["engine"], cfg.get("dtype", "float32")
    x = sources["train"]["x"]
    shape = pi_shape(x.shape, modality, recipe)
    check_sizes(sources, shape, dtype, cfg, modality, root)  # before any store or worker
    with parallel_backend(cfg) as n_jobs, joblib.Parallel(return_as="generator_unordered") as parallel:
        # The workers start once and load the engine while the parent hashes its inputs (the
        # warm-up also checks the recipe); none are started when every shard is already done.
        warm = parallel(joblib.delayed(warm_up)(x.shape[1:], x.dtype.str, modality, engine, recipe)
                        for _ in range(n_jobs)) if unfinished(Staging(root), sources) else []
        staged = open_staging(root, staging_identity(prepared_dir, modality, engine, recipe, dtype),
                              print_fn, folders=(STATS,), shown=shown)
        if staged.resumed:
            print_fn(f"resuming from {shown}: {len(staged.done_units())} shards already done")
        tasks, total = plan_tasks(sources, prepared_dir, staged, shape, dtype, cfg, modality, engine, recipe,
                                  n_jobs)
        try:
            for _ in warm:
                pass
        except TopologyError as error:
            raise TopologyError(f"{split_path(prepared_dir, 'train')}: {error}") from None
        started = time.perf_counter()
        if tasks:
            print_fn(f"topology: {total} samples in {len(tasks)} tasks on {n_jobs} workers "
                     f"({cfg['backend']}, engine {engine})")
            with tqdm(total=total, unit="sample", disable=not progress, desc="topology") as bar:
                for count in parallel(joblib.delayed(run_task)(*task) for task in tasks):
                    bar.update(count)
        seconds = time.perf_counter() - started
    return publish.finish(sources, staged, out_dir, modality, engine, recipe, shape, dtype,
                          {"samples_computed": total, "seconds": round(seconds, 3)})
