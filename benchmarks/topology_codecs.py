"""`topology-codecs`: one shard of persistence images written and read with each codec (none,
lz4 + shuffle, zstd) and dtype (float32, float16): seconds, size, and the write time against the
engine's time to compute them (one core)."""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.data import bench_images
from benchmarks.timing import one_core, timed

CASES = (("none", None), ("none", 256), ("lz4", 256), ("zstd", 256))  # (codec, samples per chunk; None: all)


def _write_and_read(store: Path, values: np.ndarray, codec: str, chunk: int, repeat: int) -> dict:
    """Best-of-`repeat` seconds to write `values` as one shard and to read it back (checked)."""
    from pipeline.store import create_array, create_group

    writes, reads = [], []
    for _ in range(repeat):
        shutil.rmtree(store, ignore_errors=True)
        array = create_array(create_group(store), "pis", values.shape, values.dtype, len(values),
                             codec=codec, chunk_samples=chunk)
        started = time.perf_counter()
        array[...] = values
        writes.append(time.perf_counter() - started)
        started = time.perf_counter()
        if not np.array_equal(array[...], values):
            raise RuntimeError(f"codec {codec}: the shard read back differs from what was written")
        reads.append(time.perf_counter() - started)
    size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
    return {"write_s": min(writes), "read_s": min(reads), "bytes": size, "raw": values.nbytes}


def run_topology_codecs(n: int, tar: str | None = None, root: str | None = None, repeat: int = 3) -> dict:
    """Writing and reading one shard of n persistence images with each codec and dtype, against
    the engine's time to compute them (one core)."""
    from pipeline.topology import IMAGE_RECIPE
    from pipeline.topology_stage import compute_block

    images, source = bench_images(n, tar, root)
    recipe = dict(IMAGE_RECIPE)  # the TGD recipe's 50 x 50 PIs (TopologyParams has no defaults)
    res: dict = {"source": source, "n": n, "rows": []}
    with one_core():
        compute_block(images[:2], "image", "fast", recipe)  # numba's cache and the grid tables
        pis, res["compute_s"] = timed(lambda: compute_block(images, "image", "fast", recipe), repeat)
        with tempfile.TemporaryDirectory(prefix="bench-codecs-") as tmp:
            for dtype in ("float32", "float16"):
                values = pis.astype(dtype)
                for codec, chunk in CASES:
                    row = _write_and_read(Path(tmp) / "pis.zarr", values, codec, chunk or n, repeat)
                    res["rows"].append({"dtype": dtype, "codec": codec, "chunk": chunk or n, **row})
    return res


def print_topology_codecs(r: dict) -> None:
    print(f"persistence-image codecs: {r['source']}; one shard of {r['n']} images, best of runs, one core; "
          f"computing them: {r['compute_s']:.2f} s")
    print(f"  {'dtype':<8}{'codec':<6}{'chunk':>6}{'write s':>9}{'read s':>8}{'write/compute':>15}{'MB':>8}{'size':>7}")
    for row in r["rows"]:
        print(f"  {row['dtype']:<8}{row['codec']:<6}{row['chunk']:>6}{row['write_s']:>9.3f}{row['read_s']:>8.3f}"
              f"{row['write_s'] / r['compute_s']:>15.2f}{row['bytes'] / 1e6:>8.1f}{row['bytes'] / row['raw']:>7.2f}")
