"""What the topology stage refuses before it publishes, or before it starts.

`check_yield`: a recipe whose persistence images carry nothing - all zeros (a `threshold` above
every lifetime, a large `min_max`) or all their mass in one pixel (a PI window far wider than
the diagrams, `cubical_range: [0, 1e308]`) - for more than DEGENERATE_SHARE of the training
samples in some channel. Counted per shard by the workers (statistics.shard_sums), added here.
docs/topology.md, "Recipes that yield nothing".

`check_sizes`: stores that would not fit on the staging folder's disk, or task buffers that the
workers together could not hold in memory (the schema only bounds the resolution,
pipeline.topology.params.MAX_RESOLUTION: it cannot know the sample count).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from pipeline import locations
from pipeline.topology_stage.blocks import ENGINE_BLOCK

from pipeline.errors import TopologyError

# A channel fails when more than this share of the training samples is degenerate in it. Not
# one half: the default digits recipe's row-sequence channel is all zeros for 46 % of the
# samples (its column channel carries them); the broken recipes give 99-100 %.
DEGENERATE_SHARE = 0.9
PEAK_SHARE = 0.99  # a PI is "one pixel" when its largest pixel holds more than this of its sum


def _g(value: Any) -> str:
    return "[" + ", ".join(_g(v) for v in value) + "]" if isinstance(value, (list, tuple)) else f"{value:g}"


def _keys(section: str, recipe: dict[str, Any], names: tuple[str, ...]) -> str:
    return f"{section} ({', '.join(f'{k}={_g(recipe[k])}' for k in names)})"


def _worst(counts: np.ndarray, samples: int) -> tuple[int, float, int] | None:
    """(channel, share, other failing channels) of the channel most often degenerate, when over the bar."""
    shares = counts / samples
    bad = np.nonzero(shares > DEGENERATE_SHARE)[0]
    if not len(bad):
        return None
    worst = int(bad[np.argmax(shares[bad])])
    return worst, float(shares[worst]), len(bad) - 1


def _where(channel: int, labels: list[str], others: int) -> str:
    more = f", and in {others} other channel{'s' if others > 1 else ''}" if others else ""
    return f"channel {channel} ({labels[channel]}){more}"


def check_yield(parts: list[dict[str, Any]], modality: str, recipe: dict[str, Any], labels: list[str]) -> None:
    """A TopologyError naming the recipe's keys and the share when, in some channel, more than
    DEGENERATE_SHARE of the training samples have an all-zero or a one-pixel persistence image."""
    samples = sum(p["samples"] for p in parts)
    section = f"topology.{modality}"
    empty = _worst(np.sum([p["empty"] for p in parts], axis=0), samples)
    if empty is not None:
        channel, share, others = empty
        names = ("threshold", "min_max") if modality == "image" else ("threshold",)
        raise TopologyError(
            f"{_keys(section, recipe, names)}: {100 * share:.1f} % of training samples have an all-zero "
            f"persistence image in {_where(channel, labels, others)}; lower "
            + " or ".join(f"{section}.{k}" for k in names))
    peaked = _worst(np.sum([p["peaked"] for p in parts], axis=0), samples)
    if peaked is not None:
        channel, share, others = peaked
        ranges = ("cubical_range",) if "cubical" in labels[channel] else ("birth_range", "pers_range")
        raise TopologyError(
            f"{_keys(section, recipe, (*ranges, 'sigma', 'resolution'))}: {100 * share:.1f} % of training "
            f"samples have more than {100 * PEAK_SHARE:g} % of their persistence image's mass in one pixel "
            f"in {_where(channel, labels, others)}; narrow {' and '.join(f'{section}.{k}' for k in ranges)} "
            f"to the range the diagrams span, or raise {section}.sigma")


def _size(n: float) -> str:
    """Bytes in decimal units: 80 GB, 1.3 TB."""
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" or n >= 10 else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


def _free_where(root: Path) -> tuple[Path, int]:
    """The nearest existing folder at or above `root` and its disk's free bytes, plus what a
    staging folder already there holds (reused, or discarded and so freed)."""
    folder = root
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    held = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) if root.is_dir() else 0
    return folder, shutil.disk_usage(folder).free + held


def _available_memory() -> int | None:
    try:
        import psutil  # a dependency of dask.distributed
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


def check_sizes(sources: dict[str, zarr.Group], shape: tuple[int, int, int], dtype: str, cfg: dict[str, Any],
                modality: str, staging: str | Path) -> None:
    """A TopologyError, before any work, when the stores would not fit on the staging folder's
    disk or the workers' buffers (two shards each, float32 and the stored dtype, and the
    engine's float64 blocks) would not fit in the memory available now."""
    key = f"topology.{modality}.resolution={shape[1]}"
    k, r = shape[0], shape[1]
    itemsize = np.dtype(dtype).itemsize
    n = sum(int(s["x"].shape[0]) for s in sources.values())
    if not locations.is_url(staging):
        folder, free = _free_where(Path(staging).absolute())
        need = n * k * r * r * itemsize
        if need > free:
            where = folder.relative_to(Path.cwd()) if folder.is_relative_to(Path.cwd()) else folder
            raise TopologyError(f"{key}: the persistence images would need {_size(need)} ({n} x {k} x {r} x {r} x "
                                f"{itemsize} bytes); {where}/ has {_size(free)} free")
    if cfg["backend"] == "dask" and cfg.get("scheduler"):
        return  # the workers' memory is on other machines
    rows = max(int(s["x"].shards[0]) for s in sources.values())
    workers = cfg["n_jobs"] if cfg["n_jobs"] > 0 else (os.cpu_count() or 1)
    copies = f", their {dtype} copies" if itemsize != 4 else ""
    per_worker = 2 * rows * k * r * r * (4 + (itemsize if copies else 0)) + 2 * min(rows, ENGINE_BLOCK) * k * r * r * 8
    available = _available_memory()
    if available is not None and workers * per_worker > available:
        raise TopologyError(f"{key}: {workers} worker(s) would need {_size(workers * per_worker)} of memory "
                            f"(each: two shards of {rows} x {k} x {r} x {r} float32 values{copies} and the "
                            f"engine's float64 blocks); {_size(available)} is available; lower "
                            f"topology.{modality}.resolution, topology.n_jobs or data.shard_size")
