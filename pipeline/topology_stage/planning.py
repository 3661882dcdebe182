"""Planning the work: each split's output skeleton, created once by the parent, and the
unfinished shards cut into tasks (zarr rewrites a shard on any partial write, so a shard has
exactly one writer, the task that owns it)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import zarr

from pipeline import locations
from pipeline.staging import Staging
from pipeline.store import create_array, create_group, shard_slices, split_path

# Persistence images are written uncompressed (`python -m pipeline.bench topology-codecs`, docs/topology.md):
# zstd cost 5x the write time of no compression for 20-30 % less disk, lz4 + shuffle 2.5x for 25-30 %.
PI_CODEC = "none"


class Task(NamedTuple):
    """The arguments of pipeline.topology_stage.task.run_task: whole shards (index, start, stop)
    of one split, from the `source` store into the staged `target` store."""
    source: str
    target: str
    staging: str
    split: str
    shards: list[tuple[int, int, int]]
    modality: str
    engine: str
    recipe: dict[str, Any]


def shard_unit(split: str, index: int) -> str:
    """A shard's unit of work in the staging folder (its done marker's name)."""
    return f"{split}-{index:06d}"


def shard_counts(sources: dict[str, zarr.Group]) -> dict[str, int]:
    """Shards per split (the output has the input's shards)."""
    return {split: len(shard_slices(source["x"].shape[0], source["x"].shards[0]))
            for split, source in sources.items()}


def unfinished(staging: Staging, sources: dict[str, zarr.Group]) -> bool:
    """Whether the staging folder lacks a done marker for some shard (then workers are needed)."""
    return len(staging.done_units()) < sum(shard_counts(sources).values())


def create_split(source: zarr.Group, target: Path | str, shape: tuple[int, int, int], dtype: str) -> None:
    """Create the output arrays once, in the parent, with the same shards as the input."""
    created = locations.join(locations.parent(target), f"created-{locations.name(target)[:-len('.zarr')]}")
    if locations.is_file(created):
        return
    x = source["x"]
    with locations.naming(target):  # a full disk or a read-only folder: say where
        locations.rmtree(target)  # a skeleton half-made by a killed run
        group = create_group(target)
        create_array(group, "pis", (x.shape[0], *shape), np.dtype(dtype), x.shards[0], codec=PI_CODEC)
        labels = create_array(group, "y", source["y"].shape, np.int64, x.shards[0])
        labels[...] = source["y"][...]
        locations.write_text(created, "")  # only now is the split's skeleton complete


def plan_tasks(sources: dict[str, zarr.Group], prepared_dir: Path | str, staging: Staging,
               shape: tuple[int, int, int], dtype: str, cfg: dict[str, Any], modality: str, engine: str,
               recipe: dict[str, Any], n_jobs: int) -> tuple[list[Task], int]:
    """Create each split's output skeleton once; split the unfinished shards into tasks.
    Returns the tasks and the number of samples they compute."""
    tasks, total = [], 0
    todo = {}
    for split, source in sources.items():
        create_split(source, split_path(staging.root, split), shape, dtype)
        todo[split] = [(i, s.start, s.stop) for i, s in enumerate(shard_slices(source["x"].shape[0], source["x"].shards[0]))
                       if not staging.is_done(shard_unit(split, i))]
        total += sum(stop - start for _, start, stop in todo[split])
    size = cfg["shards_per_task"] or task_size(sum(len(t) for t in todo.values()), n_jobs)
    for split, shards in todo.items():
        parts = -(-len(shards) // size)  # as many tasks as `size` asks, their shards spread evenly
        bounds = np.linspace(0, len(shards), parts + 1).round().astype(int) if shards else []
        tasks += [Task(str(split_path(prepared_dir, split)), str(split_path(staging.root, split)), str(staging.root),
                       split, shards[a:b], modality, engine, recipe) for a, b in zip(bounds[:-1], bounds[1:])]
    return tasks, total


def task_size(shards: int, n_jobs: int) -> int:
    """Shards per task when topology.shards_per_task is null: about three tasks per worker, so a
    worker overlaps most writes with computing (within a task) and the workers still finish
    together (several tasks each)."""
    return max(1, round(shards / (3 * n_jobs)))
