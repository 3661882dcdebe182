"""`topology-backends`: the topology stage (compute_topology) on the same prepared store with
joblib's loky backend and with a Dask LocalCluster, same worker count: seconds, the ratio, and
whether the outputs are byte-identical."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.data import bench_images


def _write_prepared(prepared: Path, images: np.ndarray, shard_size: int) -> None:
    """The same images as both splits of a prepared store (the stage computes 2n)."""
    from pipeline.store import SPLITS, split_path, write_split

    labels = np.zeros(len(images), np.int64)
    attrs = {"dataset": "bench", "modality": "image", "classes": ["0"], "mean": [0.0], "std": [1.0]}
    for split in SPLITS:
        write_split(split_path(prepared, split), {"x": images, "y": labels}, attrs, shard_size)


def run_topology_backends(n: int, tar: str | None = None, root: str | None = None, workers: int = 2,
                          shard_size: int = 0, engine: str = "fast") -> dict:
    """compute_topology on the same prepared store with loky and with a Dask LocalCluster."""
    from pipeline.params import load_params
    from pipeline.store import SPLITS, split_path, tree_digest
    from pipeline.topology import IMAGE_RECIPE
    from pipeline.topology_stage import compute_block, compute_topology

    images, source = bench_images(n, tar, root)
    shard_size = shard_size or max(1, -(-len(images) // (4 * workers)))  # ~4 tasks per worker
    res: dict = {"source": source, "n": len(images), "workers": workers, "shard_size": shard_size,
                 "engine": engine}
    # the TGD recipe's PIs (params.yaml's image recipe is sized for the digits default)
    cfg = {**load_params().topology.model_dump(), "engine": engine, "n_jobs": workers, "image": dict(IMAGE_RECIPE)}
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared"
        _write_prepared(prepared, images, shard_size)
        compute_block(images[:1], "image", engine, cfg["image"])  # compile / load numba's cache once
        digests = {}
        for backend in ("loky", "dask"):
            out = Path(tmp) / backend
            started = time.perf_counter()
            summary = compute_topology(prepared, out, {**cfg, "backend": backend}, staging=Path(tmp) / f"st-{backend}",
                                       progress=False, print_fn=lambda *_: None)
            res[f"{backend}_s"] = time.perf_counter() - started
            res[f"{backend}_parallel_s"] = summary["seconds"]
            digests[backend] = [tree_digest(split_path(out, s)) for s in SPLITS]
        res["identical"] = digests["loky"] == digests["dask"]
    res["ratio"] = res["dask_s"] / res["loky_s"]
    return res


def print_topology_backends(r: dict) -> None:
    print(f"topology stage benchmark: {r['source']}; the same {r['n']} images as train and as test "
          f"({2 * r['n']} samples), shards of {r['shard_size']}, engine {r['engine']}, {r['workers']} workers each")
    print(f"  {'backend':<28}{'stage s':>10}{'parallel s':>12}{'ms/image':>10}")
    for backend, label in (("loky", "loky (joblib local)"), ("dask", "dask LocalCluster (processes)")):
        per = 1e3 * r[f"{backend}_parallel_s"] / (2 * r["n"])
        print(f"  {label:<28}{r[backend + '_s']:>10.2f}{r[backend + '_parallel_s']:>12.2f}{per:>10.2f}")
    print(f"  dask / loky (stage): {r['ratio']:.2f}x; outputs byte-identical: {r['identical']}")
    print("  (parallel s includes starting the workers: loky's pool, or the Dask cluster)")
