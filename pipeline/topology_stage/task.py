"""A task, in a worker process: compute whole shards of persistence images, write each one
straight into the staged store (the parent created it), then mark it done.

Order per shard: the shard file, then (training split) its sums (pipeline.topology_stage.statistics),
then its done marker. A shard written halfway by a killed run therefore has no marker and is
recomputed. Persistence images are stored uncompressed as `topology.dtype` (float32, or float16
for half the bytes), a whole shard written as raw bytes (store.write_whole_shard), computed in
engine calls of ENGINE_BLOCK samples into buffers a task reuses (docs/topology.md, "The stage
against its engine")."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from pipeline import locations
from pipeline.errors import TopologyError
from pipeline.staging import Staging
from pipeline.store import write_whole_shard
import pipeline.topology_stage.blocks as blocks
from pipeline.topology_stage.planning import shard_unit
from pipeline.topology_stage.statistics import shard_sums, write_sums


def _open_array(group: str | Path, name: str, mode: str) -> zarr.Array:
    if locations.is_url(group):
        return zarr.open_group(locations.zarr_store(group, read_only=mode == "r"), mode=mode,
                               zarr_format=3)[name]
    return zarr.open_array(str(Path(group) / name), mode=mode)


def run_task(source: str, target: str, staging: str, split: str, shards: list[tuple[int, int, int]],
             modality: str, engine: str, recipe: dict[str, Any]) -> int:
    """Compute and write whole shards, then mark each done; returns the samples computed.

    A thread writes each shard while the next one is computed (writing 250 MB of persistence
    images is often a wait on the disk, not work): at most one shard waits in memory. The two
    shard buffers are reused, one computed into while the other is written.
    """
    x = _open_array(source, "x", "r")
    pis = _open_array(target, "pis", "r+")
    marks = Staging(locations.as_location(staging))
    buffers: list[tuple[np.ndarray, np.ndarray] | None] = [None, None]   # (computed, stored) per parity
    with ThreadPoolExecutor(max_workers=1) as writer:
        pending = None
        for n, (index, start, stop) in enumerate(shards):
            computed, stored = _buffers(buffers, n % 2, stop - start, pis)
            try:
                block = blocks.compute_block(x[start:stop], modality, engine, recipe, first=start, out=computed)
            except TopologyError as error:
                raise TopologyError(f"{source}: samples {start}..{stop - 1} (shard {index}): {error}") from None
            sums = shard_sums(block) if split == "train" else None  # of the computed float32 values
            if stored is not computed:   # topology.dtype float16: rounded into its own buffer
                from pipeline.float16 import to_float16   # numba: loaded by the workers only

                to_float16(block, stored)
            if pending is not None:
                pending.result()  # the previous shard is on disk (or its error is raised here)
            pending = writer.submit(_store_shard, pis, target, marks, split, index, (start, stop), stored, sums)
        if pending is not None:
            pending.result()
    return sum(stop - start for _, start, stop in shards)


def _buffers(buffers: list, parity: int, rows: int, pis: zarr.Array) -> tuple[np.ndarray, np.ndarray]:
    """(computed float32, stored topology.dtype) views of `rows` rows of the buffers of `parity`
    (the same array for float32), grown when too small. The shard before last was written from
    them, and its write was waited for before the previous shard's was submitted."""
    slot = buffers[parity]
    if slot is None or len(slot[0]) < rows:
        computed = np.empty((rows, *pis.shape[1:]), np.float32)
        slot = buffers[parity] = (computed, computed if pis.dtype == computed.dtype else
                                  np.empty(computed.shape, pis.dtype))
    computed = slot[0][:rows]
    return computed, computed if slot[1] is slot[0] else slot[1][:rows]


def _store_shard(pis: zarr.Array, target: str, staging: Staging, split: str, index: int,
                 rows: tuple[int, int], stored: np.ndarray, sums: dict[str, Any] | None) -> None:
    """Write one shard, then (training split) its sums, then its done marker: in that order."""
    # A shard without a marker may hold a killed run's bytes: never let zarr read them back
    # (it merges a write that does not cover a whole shard, the split's last one, into them).
    shard_file = locations.join(target, "pis", pis.metadata.encode_chunk_key((index,) + (0,) * (pis.ndim - 1)))
    with locations.naming(shard_file):  # a full disk or a read-only folder: say which file
        locations.remove(shard_file)
        write_whole_shard(pis, shard_file, slice(*rows), stored)
        if sums is not None:
            write_sums(staging, index, sums)
        staging.mark_done(shard_unit(split, index), f"{rows[0]} {rows[1]}\n")
