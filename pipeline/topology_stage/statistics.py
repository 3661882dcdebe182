"""The training statistics (per-channel mean and std of the persistence images), from sums that
each training shard's task writes to the staging folder before its done marker: no pass over the
written stores, and the same result whichever worker finished first."""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from pipeline import locations
from pipeline.staging import Staging, write_atomic

STATS = "stats"  # the staging folder's folder of training shards' sums


def shard_sums(pis: np.ndarray) -> dict[str, Any]:
    """What a shard adds to the training statistics: value count, per-channel sums and sums of
    squares (float64) of its float32 persistence images (with topology.dtype float16, the values
    before rounding: the statistics differ from the stored values' by float16's ~1e-4, far below
    what normalisation needs), one pass, no float64 copy of the shard; and per channel the samples
    whose PI is all zeros or one pixel (`empty`, `peaked` of `samples`: checks.check_yield)."""
    from pipeline.channel_sums import channel_sums  # numba: loaded by the workers only
    from pipeline.topology_stage.checks import PEAK_SHARE
    from pipeline.topology_stage.peaks import degenerate_counts

    flat = pis.reshape(pis.shape[0], pis.shape[1], -1)
    total, squares = channel_sums(flat)
    empty, peaked = degenerate_counts(flat, PEAK_SHARE)  # for checks.check_yield
    return {"count": int(flat.shape[0] * flat.shape[2]), "sum": total.tolist(), "squares": squares.tolist(),
            "samples": int(flat.shape[0]), "empty": empty.tolist(), "peaked": peaked.tolist()}


def _sums_file(staging: Staging, index: int):
    return staging.path(STATS, f"train-{index:06d}")


def write_sums(staging: Staging, index: int, sums: dict[str, Any]) -> None:
    """A training shard's sums, atomically (before its done marker)."""
    write_atomic(_sums_file(staging, index), json.dumps(sums))


def read_sums(staging: Staging, n_shards: int) -> list[dict[str, Any]]:
    """The sums of training shards 0..n_shards-1, in shard order."""
    return [json.loads(locations.read_text(_sums_file(staging, i))) for i in range(n_shards)]


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
