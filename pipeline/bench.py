"""Benchmarks: ``python -m pipeline.bench <subcommand> ...``.

Subcommands:
  topology   engine ripser vs engine fast on real CIFAR-10 test images, one core each:
             ms/image, ratio, max abs difference, diagram vs image time, compile time.
"""
from __future__ import annotations

import os

if __name__ == "__main__":
    # One core for everything the benchmark measures: set before numpy/BLAS/numba start their
    # thread pools (only when run as a program; importing the loaders leaves the process alone).
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

CIFAR_TAR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10-jpeg.tar.gz"
DEFAULT_CIFAR_TAR = CIFAR_TAR if CIFAR_TAR.exists() else Path("/work/shared/datasets/cifar10-jpeg.tar.gz")


def load_cifar_test_images(n: int, path: str | Path = DEFAULT_CIFAR_TAR) -> np.ndarray:
    """The first n CIFAR-10 test JPEGs (sorted member names under */test/) as uint8 (n, 32, 32, 3),
    read straight from the tar.gz (no unpacking)."""
    from PIL import Image

    path = Path(path)
    with tarfile.open(path, "r:*") as tar:
        members = sorted((m for m in tar.getmembers()
                          if m.isfile() and "/test/" in f"/{m.name}" and m.name.lower().endswith(".jpg")),
                         key=lambda m: m.name)[:n]
        out = []
        for m in members:
            with Image.open(io.BytesIO(tar.extractfile(m).read())) as im:
                out.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
    if len(out) < n:
        raise FileNotFoundError(f"{path} holds only {len(out)} test JPEGs, {n} asked")
    return np.stack(out)


def load_digits_images(n: int) -> np.ndarray:
    """The first n training images of the pipeline's own `digits` data set (uint8, 32x32x1)."""
    from pipeline.data import load_dataset

    return load_dataset({"name": "digits", "split_seed": 0, "test_fraction": 0.2}).splits["train"].x[:n]


def bench_images(n: int, data: str | Path | None) -> tuple[np.ndarray, str]:
    path = Path(data) if data else DEFAULT_CIFAR_TAR
    if path.exists():
        return load_cifar_test_images(n, path), f"CIFAR-10 test, first {n} JPEGs of {path}"
    print(f"NOTE: {path} not found: falling back to sklearn digits upsampled to 32x32 (1 channel)",
          file=sys.stderr)
    x = load_digits_images(n)
    return x, f"sklearn digits x{len(x)} upsampled to 32x32, 1 channel (CIFAR tar {path} missing)"


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


def _timed(fn, repeat: int = 1):
    best = float("inf")
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def run_topology(n: int, data: str | Path | None, repeat: int = 3) -> dict:
    from pipeline.topology import ENGINES, image_sequences, persistence_images
    from pipeline.topology import fast as fast_mod
    from pipeline.topology.grid import make_grid

    cfg = dict(threshold=0.02, resolution=50, sigma=0.01, birth_range=(0.0, 0.3), pers_range=(0.0, 0.3),
               orders=("row", "column"), normalize=True)
    images, source = bench_images(n, data)
    seqs = image_sequences(images, cfg["orders"])
    flat = seqs.reshape(-1, seqs.shape[-1])
    grid = make_grid(cfg["birth_range"], cfg["pers_range"], cfg["resolution"], cfg["sigma"])
    res: dict = {"source": source, "n": len(images), "pis_per_image": seqs.shape[1]}

    with one_core():
        res["compile_s"] = fast_mod.warmup()
        t = time.perf_counter()
        fast_mod.u8_tables(grid)
        res["tables_s"] = time.perf_counter() - t

        ref, t_ref = _timed(lambda: persistence_images(images, engine="ripser", **cfg), 1)
        _, t_ref_dg = _timed(lambda: ENGINES["ripser"].diagrams(flat), 1)
        fst, t_fast = _timed(lambda: persistence_images(images, engine="fast", **cfg), repeat)
        ncl, t_fast_dg = _timed(lambda: fast_mod.cleaned_counts(flat, cfg["threshold"]), repeat)

    per = 1e3 / len(images)
    res.update(
        ripser_ms=t_ref * per, ripser_diagram_ms=t_ref_dg * per, ripser_image_ms=(t_ref - t_ref_dg) * per,
        fast_ms=t_fast * per, fast_diagram_ms=t_fast_dg * per, fast_image_ms=max(t_fast - t_fast_dg, 0) * per,
        ratio=t_ref / t_fast, max_abs_diff=float(np.abs(ref - fst).max()),
        mean_points=float(np.mean(ncl)), empty=int(sum(c == 0 for c in ncl)),
    )
    return res


def print_topology(r: dict) -> None:
    k = r["pis_per_image"]
    print(f"topology benchmark: {r['source']}; {r['n']} images x {k} PIs (50x50), one core each")
    print(f"  cleaned diagram points: mean {r['mean_points']:.1f} per PI, {r['empty']} empty PIs")
    print(f"  fast: numba compile/cache load {r['compile_s']:.2f} s, grid tables {r['tables_s'] * 1e3:.1f} ms (once per process)")
    print(f"  {'engine':<8}{'ms/image':>12}{'diagrams':>12}{'images':>12}")
    for e in ("ripser", "fast"):
        print(f"  {e:<8}{r[e + '_ms']:>12.3f}{r[e + '_diagram_ms']:>12.3f}{r[e + '_image_ms']:>12.3f}")
    print(f"  speed-up ripser/fast: {r['ratio']:.0f}x")
    print(f"  max |ripser - fast| over all PIs: {r['max_abs_diff']:.3g}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("topology", help="engine ripser vs engine fast on real images")
    p.add_argument("--n", type=int, default=200, help="number of images (default 200)")
    p.add_argument("--data", default=None,
                   help=f"CIFAR-10 JPEG tar.gz (default {DEFAULT_CIFAR_TAR}); sklearn digits if missing")
    p.add_argument("--repeat", type=int, default=3, help="timing repeats of the fast engine (best of)")
    args = parser.parse_args(argv)
    if args.command == "topology":
        if args.n < 1:
            parser.error("--n must be >= 1")
        print_topology(run_topology(args.n, args.data, args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
