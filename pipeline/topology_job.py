"""The topology stage's driver: persistence images of every prepared sample, once, in parallel.

Work is split into tasks of whole shards (zarr rewrites a shard on any partial write, so a shard
has exactly one writer). Tasks run with joblib (local processes, or a Dask cluster through
joblib's Dask backend) and write straight into stores that the parent created once.

Resumable: stores are filled in a staging folder outside the stage's DVC output (DVC deletes
outputs before a stage runs). A shard counts as done only once its marker file exists, and the
marker is written, atomically, after the shard itself; a shard written halfway by a killed run
therefore has no marker and is recomputed. The staging folder carries a fingerprint of the
recipe and of the input stores, so work from another recipe or input is never reused. When every
shard is done the stores are published into the output folder: each split is assembled in
`<split>.zarr.partial` from hard links to the staged shard files (copies where linking fails;
zarr's own `*.partial` temporaries of a killed write are left out), its attributes are written,
and it is renamed into place. The staging folder stays intact until every split and stats.json
are published, so a kill during publishing (after which DVC deletes the half-made output) costs
only the publishing, never the computed shards.

Speed: the parent never loads the engine; the workers start once and load it (numba's cached
kernels, the grid tables) while the parent hashes its inputs. Within a task a thread writes each
shard while the next one is computed. A training shard's per-channel sums (float64) are written
to `stats/` before its marker, and the parent adds them in shard order for the mean and std: no
pass over the written stores, and the same result whichever worker finished first. Persistence
images are stored uncompressed as `topology.dtype` (float32, or float16 for half the bytes), a
whole shard written as raw bytes (store.write_whole_shard), computed in engine calls of
ENGINE_BLOCK samples into buffers a task reuses (docs/topology.md, "The stage against its engine").

Locations (pipeline.locations): the prepared, output and staging folders are local paths or
fsspec URLs. Local paths are made absolute before they reach a task (a worker's current folder
need not be the stage's), and keep the pathlib code above. With URLs the same steps go through
fsspec: markers are single objects (one PUT), publishing copies the staged files, and a URL
output's default staging folder is `<out_dir>.staging`, beside it, where a cluster's workers
reach it too.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import joblib
import numpy as np
import zarr
from tqdm.auto import tqdm

from pipeline import locations
from pipeline.layout import STAGING
from pipeline.errors import TopologyError
from pipeline.store import (SPLITS, _jsonable, create_array, create_group, open_split, shard_slices,
                            split_path, tree_digest, write_json, write_whole_shard)

DEFAULT_STAGING = STAGING / "topology"
# Persistence images are written uncompressed (`python -m pipeline.bench topology-codecs`, docs/topology.md):
# zstd cost 5x the write time of no compression for 20-30 % less disk, lz4 + shuffle 2.5x for 25-30 %.
PI_CODEC = "none"
STAGING_LAYOUT = 2  # 2: training shards' sums in stats/ (a staging folder of layout 1 is discarded)
# Samples per engine call. A call's output is one fresh array: 4,096 CIFAR-10 images' PIs (245 MB)
# cost the kernel half as much time as the engine's own work (page faults), 128 (7.7 MB) nothing
# measurable (docs/topology.md); the blocks land in a buffer that a task reuses.
ENGINE_BLOCK = 128


def recipe_for(cfg: dict[str, Any], modality: str) -> dict[str, Any]:
    """The persistence-image recipe of a modality (topology.image or topology.signal)."""
    return dict(cfg[modality])


def persistence_images(images: np.ndarray, **recipe) -> np.ndarray:
    """pipeline.topology's, imported on first use: the parent process never needs the engine."""
    from pipeline.topology import persistence_images as images_of

    return images_of(images, **recipe)


def signal_persistence_images(signals: np.ndarray, **recipe) -> np.ndarray:
    from pipeline.topology import signal_persistence_images as images_of

    return images_of(signals, **recipe)


def compute_block(x: np.ndarray, modality: str, engine: str, recipe: dict[str, Any],
                  first: int = 0, out: np.ndarray | None = None) -> np.ndarray:
    """Persistence images of one block of samples (into `out`, when given, of len(x) rows), in
    engine calls of ENGINE_BLOCK samples; NaN or inf is an error, never stored.

    `first` is the index of the block's first sample in its split, so that an error names the
    culprit samples by their index in the store.
    """
    images_of = persistence_images if modality == "image" else signal_persistence_images
    for start in range(0, max(len(x), 1), ENGINE_BLOCK):
        pis = np.asarray(images_of(x[start:start + ENGINE_BLOCK], engine=engine, **recipe))
        if not np.isfinite(pis).all():
            bad = (np.unique(np.nonzero(~np.isfinite(pis.reshape(len(pis), -1)))[0]) + first + start).tolist()
            more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
            raise TopologyError(f"non-finite (NaN or inf) persistence images for samples {bad[:10]}{more} "
                                f"(engine {engine}); nothing was stored for them")
        if out is None:
            if len(pis) == len(x):   # one call made all of it
                return pis
            out = np.empty((len(x), *pis.shape[1:]), pis.dtype)
        out[start:start + len(pis)] = pis
    return out


def _marker(staging: Path | str, split: str, index: int) -> Path | str:
    return locations.join(staging, "done", f"{split}-{index:06d}")


def _stats_file(staging: Path | str, index: int) -> Path | str:
    """A training shard's sums (shard_sums), written before its done marker."""
    return locations.join(staging, "stats", f"train-{index:06d}")


def _write_marker(marker: Path | str, text: str) -> None:
    """Atomically: a rename of a temporary file locally, one PUT at a URL."""
    if locations.is_url(marker):
        locations.write_text(marker, text)
        return
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, marker)


def _done_markers(staging: Path | str) -> list:
    """Finished shards' markers (a marker's temporary file does not count)."""
    if locations.is_url(staging):
        return [n for n in locations.listdir(locations.join(staging, "done"))
                if "-" in n and not n.endswith(".tmp")]
    return [p for p in (staging / "done").glob("*-*") if p.suffix != ".tmp"]


def _open_array(group: str | Path, name: str, mode: str) -> zarr.Array:
    if locations.is_url(group):
        return zarr.open_group(locations.zarr_store(group, read_only=mode == "r"), mode=mode,
                               zarr_format=3)[name]
    return zarr.open_array(str(Path(group) / name), mode=mode)


def _run_task(source: str, target: str, staging: str, split: str, shards: list[tuple[int, int, int]],
              modality: str, engine: str, recipe: dict[str, Any]) -> int:
    """Compute and write whole shards, then mark each done. Runs in a worker process.

    A thread writes each shard while the next one is computed (writing 250 MB of persistence
    images is often a wait on the disk, not work): at most one shard waits in memory. The two
    shard buffers are reused, one computed into while the other is written.
    """
    x = _open_array(source, "x", "r")
    pis = _open_array(target, "pis", "r+")
    buffers: list[tuple[np.ndarray, np.ndarray] | None] = [None, None]   # (computed, stored) per parity
    with ThreadPoolExecutor(max_workers=1) as writer:
        pending = None
        for n, (index, start, stop) in enumerate(shards):
            rows = stop - start
            slot = buffers[n % 2]   # the shard before last was written from it: pending.result() below
            if slot is None or len(slot[0]) < rows:
                computed = np.empty((rows, *pis.shape[1:]), np.float32)
                slot = buffers[n % 2] = (computed, computed if pis.dtype == computed.dtype else
                                         np.empty(computed.shape, pis.dtype))
            try:
                block = compute_block(x[start:stop], modality, engine, recipe, first=start, out=slot[0][:rows])
            except TopologyError as error:
                raise TopologyError(f"{source}: samples {start}..{stop - 1} (shard {index}): {error}") from None
            sums = shard_sums(block) if split == "train" else None  # of the computed float32 values
            stored = block if slot[1] is slot[0] else slot[1][:rows]
            if stored is not block:   # topology.dtype float16: rounded into its own buffer
                from pipeline.float16 import to_float16   # numba: loaded by the workers only

                to_float16(block, stored)
            if pending is not None:
                pending.result()  # the previous shard is on disk (or its error is raised here)
            pending = writer.submit(_store_shard, pis, target, locations.as_location(staging), split, index,
                                    (start, stop), stored, sums)
        if pending is not None:
            pending.result()
    return sum(stop - start for _, start, stop in shards)


def _store_shard(pis: zarr.Array, target: str, staging: Path | str, split: str, index: int,
                 rows: tuple[int, int], stored: np.ndarray, sums: dict[str, Any] | None) -> None:
    """Write one shard, then (training split) its sums, then its done marker: in that order."""
    # A shard without a marker may hold a killed run's bytes: never let zarr read them back
    # (it merges a write that does not cover a whole shard, the split's last one, into them).
    shard_file = locations.join(target, "pis", pis.metadata.encode_chunk_key((index,) + (0,) * (pis.ndim - 1)))
    with locations.naming(shard_file):  # a full disk or a read-only folder: say which file
        locations.remove(shard_file)
        write_whole_shard(pis, shard_file, slice(*rows), stored)
        if sums is not None:
            _write_marker(_stats_file(staging, index), json.dumps(sums))
        _write_marker(_marker(staging, split, index), f"{rows[0]} {rows[1]}\n")


def shard_sums(pis: np.ndarray) -> dict[str, Any]:
    """What a shard adds to the training statistics: value count, per-channel sums and sums of
    squares (float64) of its float32 persistence images (with topology.dtype float16, the values
    before rounding: the statistics differ from the stored values' by float16's ~1e-4, far below
    what normalisation needs). One pass, no float64 copy of the shard."""
    from pipeline.channel_sums import channel_sums  # numba: loaded by the workers only

    flat = pis.reshape(pis.shape[0], pis.shape[1], -1)
    total, squares = channel_sums(flat)
    return {"count": int(flat.shape[0] * flat.shape[2]), "sum": total.tolist(), "squares": squares.tolist()}


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


def fingerprint(prepared_dir: Path, modality: str, engine: str, recipe: dict[str, Any],
                dtype: str = "float32") -> str:
    """Identity of the work in a staging folder: recipe, stored dtype, staging layout, inputs."""
    ident = {"modality": modality, "engine": engine, "recipe": recipe, "dtype": dtype, "layout": STAGING_LAYOUT,
             "inputs": {s: tree_digest(split_path(prepared_dir, s)) for s in SPLITS}}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


def _prepare_staging(staging: Path | str, print_fn, stamp: str) -> None:
    if locations.is_url(staging):
        _prepare_staging_url(staging, print_fn, stamp)
        return
    stamp_file = staging / "fingerprint"
    if stamp_file.is_file() and stamp_file.read_text().strip() == stamp and (staging / "done").is_dir() \
            and (staging / "stats").is_dir():
        done = len(_done_markers(staging))
        print_fn(f"resuming from {staging}: {done} shards already done")
        return
    if staging.exists():
        print_fn(f"discarding {staging}: it holds work for another recipe or input")
        shutil.rmtree(staging)
    (staging / "done").mkdir(parents=True)
    (staging / "stats").mkdir()
    tmp = stamp_file.with_name(stamp_file.name + ".tmp")
    tmp.write_text(stamp + "\n")
    os.replace(tmp, stamp_file)  # written last: a staging folder without it is never resumed


def _prepare_staging_url(staging: str, print_fn, stamp: str) -> None:
    stamp_file = locations.join(staging, "fingerprint")
    if locations.is_file(stamp_file) and locations.read_text(stamp_file).strip() == stamp:
        print_fn(f"resuming from {staging}: {len(_done_markers(staging))} shards already done")
        return
    if locations.exists(staging):
        print_fn(f"discarding {staging}: it holds work for another recipe or input")
        locations.rmtree(staging)
    locations.makedirs(locations.join(staging, "done"))
    locations.makedirs(locations.join(staging, "stats"))
    locations.write_text(stamp_file, stamp + "\n")  # one PUT, last: the mark of a usable staging


def _create_split(source: zarr.Group, target: Path | str, shape: tuple[int, int, int], dtype: str) -> None:
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


def pi_shape(x_shape: tuple[int, ...], modality: str, recipe: dict[str, Any]) -> tuple[int, int, int]:
    """(channels, R, R) of a sample's persistence images, as pipeline.topology.channel_labels
    counts them: per image channel, len(orders) for each `sequence` and 2 (H0, H1) for each
    `cubical` filtration; one per signal channel. The parent never loads the engine to learn it."""
    per_channel = 1
    if modality == "image":
        per_channel = sum(len(recipe["orders"]) if name == "sequence" else 2 for name in recipe["filtrations"])
    channels = x_shape[-1] * per_channel
    return channels, recipe["resolution"], recipe["resolution"]


def channel_mean_std(parts: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """Per-channel mean and std from the training shards' sums, added in shard order (so the
    result never depends on which worker finished first)."""
    total = np.zeros(len(parts[0]["sum"]))
    squares = np.zeros_like(total)
    count = 0
    for part in parts:
        total += np.asarray(part["sum"])
        squares += np.asarray(part["squares"])
        count += part["count"]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))
    std[std == 0] = 1.0
    return mean.tolist(), std.tolist()


def _read_stats(staging: Path | str, n_shards: int) -> list[dict[str, Any]]:
    return [json.loads(locations.read_text(_stats_file(staging, i))) for i in range(n_shards)]


def _absolute(location: str | Path) -> str | Path:
    """A URL as it is, a local path made absolute (tasks may run in another current folder)."""
    return location if locations.is_url(location) else Path(location).absolute()


def compute_topology(prepared_dir: str | Path, out_dir: str | Path, cfg: dict[str, Any],
                     staging: str | Path | None = None, progress: bool = True,
                     print_fn=print) -> dict[str, Any]:
    """Persistence images of both splits of `prepared_dir` into `out_dir`; returns a summary.

    Each location is a local path or an fsspec URL. `staging` defaults to
    data/.staging/topology for a local `out_dir` and to `<out_dir>.staging` for a URL.
    """
    if staging is None:
        staging = str(out_dir).rstrip("/") + ".staging" if locations.is_url(out_dir) else DEFAULT_STAGING
    shown = staging  # messages name the staging folder as given (a relative path stays relative)
    prepared_dir, out_dir, staging = (_absolute(p) for p in (prepared_dir, out_dir, staging))
    sources = {s: open_split(split_path(prepared_dir, s)) for s in SPLITS}
    modality = sources["train"].attrs["modality"]
    recipe = recipe_for(cfg, modality)
    engine, dtype = cfg["engine"], cfg.get("dtype", "float32")
    x = sources["train"]["x"]
    shape = pi_shape(x.shape, modality, recipe)
    with parallel_backend(cfg) as n_jobs, joblib.Parallel(return_as="generator_unordered") as parallel:
        # The workers start once and load the engine while the parent hashes its inputs (the
        # warm-up also checks the recipe); none are started when every shard is already done.
        warm = parallel(joblib.delayed(warm_up)(x.shape[1:], x.dtype.str, modality, engine, recipe)
                        for _ in range(n_jobs)) if _unfinished(staging, sources) else []
        _prepare_staging(staging, lambda line: print_fn(line.replace(str(staging), str(shown))),
                         fingerprint(prepared_dir, modality, engine, recipe, dtype))
        tasks, total = _plan_tasks(sources, prepared_dir, staging, shape, dtype, cfg, modality, engine, recipe,
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
                for count in parallel(joblib.delayed(_run_task)(*task) for task in tasks):
                    bar.update(count)
        seconds = time.perf_counter() - started
    return _finish(sources, staging, out_dir, modality, engine, recipe, shape, dtype,
                   {"samples_computed": total, "seconds": round(seconds, 3)})


def _finish(sources, staging, out_dir, modality, engine, recipe, shape, dtype, summary) -> dict[str, Any]:
    """Check every shard is done, combine the statistics and publish the stores, stats.json last."""
    shards = {split: len(shard_slices(source["x"].shape[0], source["x"].shards[0])) for split, source in sources.items()}
    missing = [f"{split}-{i:06d}" for split, n in shards.items() for i in range(n)
               if not locations.is_file(_marker(staging, split, i))]
    if missing:  # every task returned, so this is a bug, never a state to publish
        raise TopologyError(f"{staging}: shards {missing[:5]} have no done marker after the run")
    mean, std = channel_mean_std(_read_stats(staging, shards["train"]))
    if not np.isfinite(mean + std).all():
        raise TopologyError(f"{split_path(staging, 'train')}: non-finite persistence-image statistics")
    attrs = {"modality": modality, "engine": engine, "recipe": recipe, "mean": mean, "std": std,
             "classes": sources["train"].attrs["classes"], "dataset": sources["train"].attrs["dataset"]}
    locations.makedirs(out_dir)
    locations.remove(locations.join(out_dir, "stats.json"))  # written last: the mark of a complete output
    for split in SPLITS:
        _publish(split_path(staging, split), split_path(out_dir, split), {**attrs, "split": split})
    write_json(locations.join(out_dir, "stats.json"), {"mean": mean, "std": std, "shape": list(shape),
                                        "modality": modality, "engine": engine, "recipe": recipe})
    locations.rmtree(staging)
    return {**attrs, **summary, "shape": list(shape), "dtype": dtype}


def _unfinished(staging: Path | str, sources: dict[str, zarr.Group]) -> bool:
    """Whether the staging folder lacks a done marker for some shard (then workers are needed)."""
    shards = sum(len(shard_slices(s["x"].shape[0], s["x"].shards[0])) for s in sources.values())
    return not locations.exists(staging) or len(_done_markers(staging)) < shards


def warm_up(sample_shape: tuple[int, ...], dtype: str, modality: str, engine: str, recipe: dict[str, Any]) -> None:
    """Load the engine in a worker (numba's compiled kernels, the grid tables) on one blank sample."""
    compute_block(np.zeros((1, *sample_shape), np.dtype(dtype)), modality, engine, recipe)


def _plan_tasks(sources, prepared_dir, staging, shape, dtype, cfg, modality, engine, recipe,
                n_jobs: int) -> tuple[list, int]:
    """Create each split's output skeleton once; split the unfinished shards into tasks."""
    tasks, total = [], 0
    todo = {}
    for split, source in sources.items():
        _create_split(source, split_path(staging, split), shape, dtype)
        todo[split] = [(i, s.start, s.stop) for i, s in enumerate(shard_slices(source["x"].shape[0], source["x"].shards[0]))
                       if not locations.is_file(_marker(staging, split, i))]
        total += sum(stop - start for _, start, stop in todo[split])
    size = cfg["shards_per_task"] or task_size(sum(len(t) for t in todo.values()), n_jobs)
    for split, shards in todo.items():
        parts = -(-len(shards) // size)  # as many tasks as `size` asks, their shards spread evenly
        bounds = np.linspace(0, len(shards), parts + 1).round().astype(int) if shards else []
        tasks += [(str(split_path(prepared_dir, split)), str(split_path(staging, split)), str(staging), split,
                   shards[a:b], modality, engine, recipe) for a, b in zip(bounds[:-1], bounds[1:])]
    return tasks, total


def task_size(shards: int, n_jobs: int) -> int:
    """Shards per task when topology.shards_per_task is null: about three tasks per worker, so a
    worker overlaps most writes with computing (within a task) and the workers still finish
    together (several tasks each)."""
    return max(1, round(shards / (3 * n_jobs)))


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not supported
        shutil.copy2(source, target)


def _publish(staged: Path, target: Path, attrs: dict[str, Any]) -> None:
    """Assemble a finished staged store at `target` without consuming the staged copy.

    Shard files are hard-linked (zarr replaces files by rename, never rewrites them in place);
    metadata files are copied, because the attributes are then written into the copy only.
    With a URL on either side every file is copied through fsspec, the top-level zarr.json last.
    """
    if locations.is_url(staged) or locations.is_url(target):
        _publish_url(staged, target, attrs)
        return
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    for directory, _, files in os.walk(staged):
        folder = partial / Path(directory).relative_to(staged)
        folder.mkdir(parents=True, exist_ok=True)
        for name in files:
            if name.endswith(".partial"):  # zarr's temporary file of a write that was killed
                continue
            source = os.path.join(directory, name)
            if name == "zarr.json":
                shutil.copyfile(source, folder / name)
            else:
                _link_or_copy(source, str(folder / name))
    zarr.open_group(str(partial), mode="r+", zarr_format=3).attrs.update(_jsonable(attrs))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)


def _publish_url(staged: Path | str, target: Path | str, attrs: dict[str, Any]) -> None:
    partial = str(target).rstrip("/") + ".partial"
    locations.rmtree(partial)
    locations.copytree(staged, partial, skip_suffix=".partial")  # zarr's temporaries of a killed write
    group = zarr.open_group(locations.zarr_store(partial), mode="r+", zarr_format=3)
    group.attrs.update(_jsonable(attrs))
    if locations.is_url(target):
        locations.rmtree(str(target))
        locations.move(partial, str(target))
    else:
        shutil.rmtree(target, ignore_errors=True)
        os.replace(partial, target)

