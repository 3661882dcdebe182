"""Benchmarks: ``python -m pipeline.bench <subcommand> ...``.

Subcommands:
  topology           engine ripser vs engine fast on real CIFAR-10 test images, one core each, for
                     one filtration (--filtration sequence | cubical): ms/image, ratio, max abs
                     difference, diagram vs image time, compile time, PIs under the min_max floor.
  topology-floor     how many PIs the min_max floor zeroes, per filtration, on a prepared store.
  topology-signals   the same for 1-D windows (the TPKD recipe, one PI per channel) of the
                     embedded basicmotions set: ms/window, ratio, max abs difference.
  topology-backends  the topology stage (compute_topology) on N images with joblib's loky
                     backend vs a Dask LocalCluster, same worker count: seconds, ratio, and
                     whether the outputs are byte-identical.
  topology-codecs    one shard of persistence images written and read with each codec (none, lz4 +
                     shuffle, zstd) and dtype (float32, float16): seconds, size, write/compute ratio.
  topology-stage     the prepare and topology stages (as DVC runs them) on an imagefolder tree, then
                     the engine alone on the same images and workers: seconds and the ratio, the
                     stage's parallel part against the rest, and what putting its output into
                     this machine's page cache costs (a new file vs the same file rewritten).
  ddp                ms per training step (forward, backward, optimiser) of a model on one
                     global batch: 1 process vs N gloo processes (DistributedDataParallel).
  train              ms per training image: the project's loop vs a bare PyTorch loop, for
                     the student alone and for tgd with the teachers running or cached; the
                     teachers' share of a step (pipeline.bench_train). --device cuda: every
                     row on the GPU; --amp (CUDA only): bf16 autocast off and on, both tables
                     and the on/off ratio of every row.
  layout             the PI teacher's training step and forward pass on contiguous (NCHW) vs
                     channels-last (NHWC) persistence images (train.channels_last).
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

REPO = Path(__file__).resolve().parents[1]
# The documented data locations, relative to the repository (README.md, docs/results.md): the
# shared tarball, and the tree unpacked from it into the git-ignored data/raw/.
CIFAR_TAR_RELATIVE = "../shared/datasets/cifar10-jpeg.tar.gz"
CIFAR_ROOT_RELATIVE = "data/raw/cifar10-jpeg"
DEFAULT_CIFAR_TAR = REPO / CIFAR_TAR_RELATIVE


class BenchDataMissing(Exception):
    """The benchmark's data is not where it was asked for or documented: one line for the user."""


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
        raise BenchDataMissing(f"{path} holds only {len(out)} test JPEGs, {n} asked")
    return np.stack(out)


def load_folder_test_images(n: int, root: str | Path) -> np.ndarray:
    """The same images from the unpacked tree: the first n of root/test/<class>/*.jpg by path."""
    from PIL import Image

    files = sorted(Path(root, "test").glob("*/*.jpg"), key=lambda p: p.relative_to(root).as_posix())[:n]
    if len(files) < n:
        raise BenchDataMissing(f"{Path(root, 'test')} holds only {len(files)} JPEGs in class folders, {n} asked")
    out = []
    for file in files:
        with Image.open(file) as im:
            out.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
    return np.stack(out)


def load_digits_images(n: int) -> np.ndarray:
    """The first n training images of the pipeline's own `digits` data set (uint8, 32x32x1)."""
    from pipeline.data import load_dataset

    return load_dataset({"name": "digits", "split_seed": 0, "test_fraction": 0.2}).splits["train"].x[:n]


def cifar_source(tar: str | None, root: str | None) -> tuple[str, Path]:
    """("tar" | "root", path) of the CIFAR-10 JPEGs: --root, --tar, or the documented tarball."""
    if root:
        if not Path(root, "test").is_dir():
            raise BenchDataMissing(f"--root {root}: no test/ folder there (expected the cifar10-jpeg tree: "
                                   "train/<class>/*.jpg, test/<class>/*.jpg)")
        return "root", Path(root)
    if tar:
        if not Path(tar).is_file():
            raise BenchDataMissing(f"--tar {tar}: no such file")
        return "tar", Path(tar)
    if DEFAULT_CIFAR_TAR.is_file():
        return "tar", DEFAULT_CIFAR_TAR
    raise BenchDataMissing(f"the CIFAR-10 JPEGs are not at {CIFAR_TAR_RELATIVE} (relative to the repository): "
                           "pass --tar PATH/cifar10-jpeg.tar.gz or --root PATH/cifar10-jpeg")


def bench_images(n: int, tar: str | None = None, root: str | None = None) -> tuple[np.ndarray, str]:
    """The first n CIFAR-10 test images and a description that names where they came from as given
    (the documented relative location when defaulted), never as this machine's absolute path."""
    kind, path = cifar_source(tar, root)
    shown = (root or tar) if (root or tar) else CIFAR_TAR_RELATIVE
    if kind == "root":
        return load_folder_test_images(n, path), f"CIFAR-10 test, first {n} JPEGs of {shown}"
    return load_cifar_test_images(n, path), f"CIFAR-10 test, first {n} JPEGs of {shown}"


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


def _recipe_parts(images: np.ndarray, filtration: str, recipe: dict):
    """What the diagram timings run on: a filtration's inputs, its grid, the two engines' diagram
    functions (reference: every raw diagram; fast: the diagram kernel and the cleaning alone)."""
    from pipeline.topology import ENGINES, image_sequences
    from pipeline.topology import fast as fast_mod
    from pipeline.topology import fast_cubical
    from pipeline.topology.grid import make_grid

    if filtration == "cubical":
        channels = np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(-1, *images.shape[1:3])
        grid = make_grid(recipe["cubical_range"], recipe["cubical_range"], recipe["resolution"], recipe["sigma"])
        return (grid, lambda: fast_mod.u8_tables(grid, exact=True),
                lambda: ENGINES["ripser"].cubical_diagrams(channels),
                lambda: fast_cubical.cleaned_counts(channels, recipe["threshold"]).ravel())
    flat = image_sequences(images, recipe["orders"]).reshape(-1, images.shape[1] * images.shape[2])
    grid = make_grid(recipe["birth_range"], recipe["pers_range"], recipe["resolution"], recipe["sigma"])
    return (grid, lambda: fast_mod.u8_tables(grid), lambda: ENGINES["ripser"].diagrams(flat),
            lambda: fast_mod.cleaned_counts(flat, recipe["threshold"]))


def floor_counts(images: np.ndarray, recipe: dict) -> tuple[int, int]:
    """(PIs the recipe's min_max floor zeroes, all PIs) with engine fast: raw maximum below the
    floor while the PI is not empty (an empty diagram gives zeros anyway)."""
    from pipeline.topology import persistence_images

    raw = persistence_images(images, engine="fast", **dict(recipe, normalize=False, min_max=0.0))
    peaks = raw.reshape(raw.shape[0] * raw.shape[1], -1).max(axis=1)
    kept = persistence_images(images, engine="fast", **dict(recipe, min_max=0.0))
    nonempty = kept.reshape(len(peaks), -1).max(axis=1) > 0
    return int(((peaks < recipe["min_max"]) & nonempty).sum()), len(peaks)


def run_topology(n: int, tar: str | None = None, root: str | None = None, repeat: int = 3,
                 filtration: str = "sequence") -> dict:
    """Both engines on the same images with one recipe (the published topology.image recipe
    with filtrations = [filtration]), one core each."""
    from pipeline.topology import IMAGE_RECIPE
    from pipeline.topology import fast as fast_mod
    from pipeline.topology import persistence_images

    recipe = {**IMAGE_RECIPE, "filtrations": [filtration]}
    images, source = bench_images(n, tar, root)
    grid, tables, ref_diagrams, fast_diagrams = _recipe_parts(images, filtration, recipe)
    res: dict = {"source": source, "n": len(images), "filtration": filtration, "resolution": grid.resolution}

    with one_core():
        res["compile_s"] = fast_mod.warmup()
        t = time.perf_counter()
        tables()
        res["tables_s"] = time.perf_counter() - t

        ref, t_ref = _timed(lambda: persistence_images(images, engine="ripser", **recipe), 1)
        _, t_ref_dg = _timed(ref_diagrams, 1)
        fst, t_fast = _timed(lambda: persistence_images(images, engine="fast", **recipe), repeat)
        ncl, t_fast_dg = _timed(fast_diagrams, repeat)
        floored, total = floor_counts(images, recipe)

    per = 1e3 / len(images)
    res.update(
        pis_per_image=ref.shape[1],
        ripser_ms=t_ref * per, ripser_diagram_ms=t_ref_dg * per, ripser_image_ms=(t_ref - t_ref_dg) * per,
        fast_ms=t_fast * per, fast_diagram_ms=t_fast_dg * per, fast_image_ms=max(t_fast - t_fast_dg, 0) * per,
        ratio=t_ref / t_fast, max_abs_diff=float(np.abs(ref - fst).max()),
        mean_points=float(np.mean(ncl)), empty=int(sum(c == 0 for c in ncl)),
        min_max=recipe["min_max"], floored=floored, floor_total=total,
    )
    return res


def print_topology(r: dict) -> None:
    k, res = r["pis_per_image"], r["resolution"]
    print(f"topology benchmark, filtration {r['filtration']}: {r['source']}; {r['n']} images x {k} PIs "
          f"({res}x{res}), one core each")
    print(f"  cleaned diagram points: mean {r['mean_points']:.1f} per PI, {r['empty']} empty PIs; "
          f"{r['floored']} of {r['floor_total']} PIs below the min_max floor {r['min_max']:g} (stored as zeros)")
    print(f"  fast: numba compile/cache load {r['compile_s']:.2f} s, grid tables {r['tables_s'] * 1e3:.1f} ms (once per process)")
    print(f"  {'engine':<8}{'ms/image':>12}{'diagrams':>12}{'images':>12}")
    for e in ("ripser", "fast"):
        print(f"  {e:<8}{r[e + '_ms']:>12.3f}{r[e + '_diagram_ms']:>12.3f}{r[e + '_image_ms']:>12.3f}")
    print(f"  speed-up ripser/fast: {r['ratio']:.0f}x")
    print(f"  max |ripser - fast| over all PIs: {r['max_abs_diff']:.3g}")


def run_topology_floor(prepared: str | Path | None, n: int, tar: str | None = None,
                       root: str | None = None) -> dict:
    """PIs the min_max floor zeroes, per filtration, over a prepared store's images (both splits)
    or the first n benchmark images."""
    from pipeline.store import SPLITS
    from pipeline.topology import IMAGE_RECIPE, open_split, shard_slices, split_path

    res: dict = {"counts": {}}
    if prepared:
        arrays = [open_split(split_path(prepared, s))["x"] for s in SPLITS]
        res["source"] = f"{prepared} ({' + '.join(str(a.shape[0]) for a in arrays)} images)"
        blocks = [a[part] for a in arrays for part in shard_slices(a.shape[0], 4096)]
    else:
        images, res["source"] = bench_images(n, tar, root)
        blocks = [images]
    for filtration in ("sequence", "cubical"):
        recipe = {**IMAGE_RECIPE, "filtrations": [filtration]}
        counts = [floor_counts(block, recipe) for block in blocks]
        res["counts"][filtration] = (sum(c[0] for c in counts), sum(c[1] for c in counts))
        res["min_max"] = recipe["min_max"]
    return res


def print_topology_floor(r: dict) -> None:
    print(f"min_max floor {r['min_max']:g}: {r['source']}")
    for filtration, (floored, total) in r["counts"].items():
        print(f"  {filtration:<9} {floored:>7} of {total} PIs ({100 * floored / total:.3f} %) below the floor")


def run_topology_signals(repeat: int = 3) -> dict:
    """Both engines on every basicmotions window (train and test), prepared as the stage does."""
    from pipeline.data import load_dataset
    from pipeline.params import load_params
    from pipeline.prepare import scale_signals
    from pipeline.topology import signal_persistence_images
    from pipeline.topology import fast as fast_mod

    dataset = load_dataset({"name": "basicmotions"})
    scale_signals(dataset)
    windows = np.concatenate([dataset.splits[s].x for s in ("train", "test")])
    cfg = load_params().topology.signal.model_dump()  # the recipe of params.yaml
    res: dict = {"source": f"basicmotions, {len(windows)} windows of {windows.shape[1]} x {windows.shape[2]} channels",
                 "n": len(windows)}
    with one_core():
        res["compile_s"] = fast_mod.warmup()
        signal_persistence_images(windows[:1], engine="fast", **cfg)  # grid tables, once
        ref, t_ref = _timed(lambda: signal_persistence_images(windows, engine="ripser", **cfg), 1)
        fst, t_fast = _timed(lambda: signal_persistence_images(windows, engine="fast", **cfg), repeat)
    per = 1e3 / len(windows)
    res.update(ripser_ms=t_ref * per, fast_ms=t_fast * per, ratio=t_ref / t_fast,
               max_abs_diff=float(np.abs(ref - fst).max()))
    return res


def print_topology_signals(r: dict) -> None:
    print(f"signal topology benchmark: {r['source']}, one core")
    print(f"  {'engine':<8}{'ms/window':>12}")
    for e in ("ripser", "fast"):
        print(f"  {e:<8}{r[e + '_ms']:>12.3f}")
    print(f"  speed-up ripser/fast: {r['ratio']:.0f}x")
    print(f"  max |ripser - fast| over all PIs: {r['max_abs_diff']:.3g}")


def run_topology_backends(n: int, tar: str | None = None, root: str | None = None, workers: int = 2,
                          shard_size: int = 0, engine: str = "fast") -> dict:
    """compute_topology on the same prepared store with loky and with a Dask LocalCluster."""
    import tempfile

    from pipeline.params import load_params
    from pipeline.store import SPLITS, split_path, tree_digest, write_split
    from pipeline.topology_job import compute_block, compute_topology

    images, source = bench_images(n, tar, root)
    labels = np.zeros(len(images), np.int64)
    shard_size = shard_size or max(1, -(-len(images) // (4 * workers)))  # ~4 tasks per worker
    res: dict = {"source": source, "n": len(images), "workers": workers, "shard_size": shard_size,
                 "engine": engine}
    from pipeline.topology import IMAGE_RECIPE

    # the TGD recipe's PIs (params.yaml's image recipe is sized for the digits default)
    cfg = {**load_params().topology.model_dump(), "engine": engine, "n_jobs": workers, "image": dict(IMAGE_RECIPE)}
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared"
        attrs = {"dataset": "bench", "modality": "image", "classes": ["0"], "mean": [0.0], "std": [1.0]}
        for split in SPLITS:  # the same images in both splits: the stage computes 2n
            write_split(split_path(prepared, split), {"x": images, "y": labels}, attrs, shard_size)
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


def run_topology_codecs(n: int, tar: str | None = None, root: str | None = None, repeat: int = 3) -> dict:
    """Writing and reading one shard of n persistence images with each codec and dtype, against
    the engine's time to compute them (one core)."""
    import shutil
    import tempfile

    from pipeline.params import TopologyParams
    from pipeline.store import create_array, create_group
    from pipeline.topology_job import compute_block

    images, source = bench_images(n, tar, root)
    recipe = TopologyParams().model_dump()["image"]
    res: dict = {"source": source, "n": n, "rows": []}
    with one_core():
        compute_block(images[:2], "image", "fast", recipe)  # numba's cache and the grid tables
        pis, res["compute_s"] = _timed(lambda: compute_block(images, "image", "fast", recipe), repeat)
        with tempfile.TemporaryDirectory(prefix="bench-codecs-") as tmp:
            for dtype in ("float32", "float16"):
                values = pis.astype(dtype)
                for codec, chunk in (("none", n), ("none", 256), ("lz4", 256), ("zstd", 256)):
                    store = Path(tmp) / "pis.zarr"
                    writes, reads = [], []
                    for _ in range(repeat):
                        shutil.rmtree(store, ignore_errors=True)
                        array = create_array(create_group(store), "pis", values.shape, values.dtype, n,
                                             codec=codec, chunk_samples=chunk)
                        started = time.perf_counter()
                        array[...] = values
                        writes.append(time.perf_counter() - started)
                        started = time.perf_counter()
                        assert np.array_equal(array[...], values)
                        reads.append(time.perf_counter() - started)
                    size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
                    res["rows"].append({"dtype": dtype, "codec": codec, "chunk": chunk, "write_s": min(writes),
                                        "read_s": min(reads), "bytes": size, "raw": values.nbytes})
    return res


def print_topology_codecs(r: dict) -> None:
    print(f"persistence-image codecs: {r['source']}; one shard of {r['n']} images, best of runs, one core; "
          f"computing them: {r['compute_s']:.2f} s")
    print(f"  {'dtype':<8}{'codec':<6}{'chunk':>6}{'write s':>9}{'read s':>8}{'write/compute':>15}{'MB':>8}{'size':>7}")
    for row in r["rows"]:
        print(f"  {row['dtype']:<8}{row['codec']:<6}{row['chunk']:>6}{row['write_s']:>9.3f}{row['read_s']:>8.3f}"
              f"{row['write_s'] / r['compute_s']:>15.2f}{row['bytes'] / 1e6:>8.1f}{row['bytes'] / row['raw']:>7.2f}")


def _engine_only(block: np.ndarray, engine: str, recipe: dict) -> float:
    """The engine's work on one shard with nothing stored; returns the worker's CPU seconds."""
    from pipeline.topology_job import compute_block

    started = time.process_time()
    compute_block(block, "image", engine, recipe)
    return time.process_time() - started


def _engine_alone(prepared: Path, engine: str, workers: int) -> tuple[float, float]:
    """(wall, CPU) seconds for the engine to compute every prepared image's PIs on `workers`
    warm loky processes, shard by shard, storing nothing: the stage's floor."""
    import joblib

    from pipeline.store import SPLITS, open_split, shard_slices, split_path
    from pipeline.topology import IMAGE_RECIPE

    recipe = dict(IMAGE_RECIPE)   # what the stage computes (bench_topology_stage sets it)
    blocks = []
    for split in SPLITS:
        x = open_split(split_path(prepared, split))["x"]
        values = x[...]
        blocks += [values[part] for part in shard_slices(len(values), x.shards[0])]
    with joblib.parallel_config(backend="loky", n_jobs=workers, inner_max_num_threads=1), \
            joblib.Parallel() as parallel:
        parallel(joblib.delayed(_engine_only)(blocks[0][:8], engine, recipe) for _ in range(4 * workers))
        started = time.perf_counter()
        cpu = sum(parallel(joblib.delayed(_engine_only)(block, engine, recipe) for block in blocks))
        return time.perf_counter() - started, cpu


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def page_cache_probe(folder: Path, nbytes: int = 1 << 30, block_bytes: int = 64 << 20) -> dict:
    """CPU seconds per GB that this machine spends putting a file's bytes into the page cache:
    writing a new file (fresh pages) and rewriting the same file in place (pages already cached).

    The difference is what storing an output costs beyond copying it: on a virtual machine whose
    free memory goes back to the host (virtio-balloon free page reporting), each fresh page is
    faulted in again by the host. The figure depends on how recently memory was freed, so the
    benchmark probes after its rounds, in the state the stage ran in."""
    import resource

    block = np.ones(block_bytes, np.uint8)   # touched before timing: only the file's pages count
    blocks = max(1, nbytes // block_bytes)
    path = folder / "page-cache-probe"

    def cpu_seconds_to_write(mode: str) -> float:
        before = resource.getrusage(resource.RUSAGE_SELF)
        with open(path, mode) as handle:
            for _ in range(blocks):
                handle.write(block)
        after = resource.getrusage(resource.RUSAGE_SELF)
        return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime

    try:
        new, cached = cpu_seconds_to_write("wb"), cpu_seconds_to_write("r+b")
    finally:
        path.unlink(missing_ok=True)
    gb = blocks * block_bytes / 1e9
    return {"new_s_per_gb": new / gb, "cached_s_per_gb": cached / gb, "gb": gb}


def _run_stage(workspace: Path, stage: str) -> tuple[float, float, str]:
    """`python -m stages.<stage>` as DVC runs it: (wall s, CPU s of it and its workers, what it printed)."""
    import subprocess

    started, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=workspace, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    seconds, cpu = time.perf_counter() - started, _children_cpu() - cpu
    if done.returncode:
        raise RuntimeError(f"stages.{stage} failed: {done.stderr.strip().splitlines()[-1:]}")
    return seconds, cpu, "\n  ".join(done.stdout.strip().splitlines())


def run_topology_stage(root: str | None, workers: int = 2, limit_train: int | None = None,
                       limit_test: int | None = None, dtype: str = "float32", engine: str = "fast",
                       repeat: int = 1) -> dict:
    """The prepare stage once, then `repeat` rounds of the topology stage and of the engine alone
    on the same prepared images and number of workers (alternating, so that both see the same
    machine load); medians and ranges."""
    import shutil
    import tempfile

    import yaml

    from pipeline.topology import IMAGE_RECIPE

    root = root or str(REPO / CIFAR_ROOT_RELATIVE)
    if not Path(root, "train").is_dir():
        raise BenchDataMissing(f"{root}: no train/ folder; unpack the JPEG tree there "
                               f"(mkdir -p data/raw && tar -xzf {CIFAR_TAR_RELATIVE} -C data/raw) or pass --root")
    res: dict = {"workers": workers, "dtype": dtype, "engine": engine, "load": [os.getloadavg()[0]],
                 "repeat": repeat, "topology": [], "engine_alone": [], "parallel_part": []}
    with tempfile.TemporaryDirectory(prefix="bench-topology-stage-") as tmp:
        workspace = Path(tmp)
        params = yaml.safe_load((REPO / "params.yaml").read_text())
        params["data"].update(name="imagefolder", root=str(Path(root).resolve()), limit_train=limit_train,
                              limit_test=limit_test)
        # the TGD recipe's 50 x 50 PIs (params.yaml's image recipe is sized for the digits default)
        params["topology"].update(engine=engine, n_jobs=workers, backend="loky", dtype=dtype, image=dict(IMAGE_RECIPE))
        (workspace / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        res["prepare_s"], res["prepare_cpu"], res["prepare_line"] = _run_stage(workspace, "prepare")
        for _ in range(repeat):
            shutil.rmtree(workspace / "data" / "topology", ignore_errors=True)
            wall, cpu, res["topology_line"] = _run_stage(workspace, "topology")
            res["topology"].append((wall, cpu))
            res["parallel_part"].append(_stage_seconds(res["topology_line"]))
            res["engine_alone"].append(_engine_alone(workspace / "data" / "prepared", engine, workers))
            res["load"].append(os.getloadavg()[0])
        res["bytes"] = sum(f.stat().st_size for f in (workspace / "data" / "topology").rglob("*") if f.is_file())
        # as many bytes as the stage wrote, between 64 MiB and 1 GiB
        res["page_cache"] = page_cache_probe(workspace, min(max(res["bytes"], 64 << 20), 1 << 30))
    for key in ("topology", "engine_alone"):
        res[key] = np.array(res[key])  # rows (wall, CPU)
    res["ratio"] = np.median(res["topology"], axis=0) / np.median(res["engine_alone"], axis=0)
    return res


def _stage_seconds(line: str) -> float:
    """The topology stage's own timer (its parallel part: workers started, engine loaded, until
    the last shard is stored), from the line it prints: `... persistence images in 9.4 s ...`."""
    import re

    found = re.search(r"persistence images in ([0-9.]+) s", line)
    if found is None:
        raise RuntimeError(f"stages.topology printed no timing: {line!r}")
    return float(found.group(1))


def print_topology_stage(r: dict) -> None:
    print(f"topology stage benchmark: {r['engine']} engine, {r['workers']} workers, PIs stored as {r['dtype']}, "
          f"{r['repeat']} round(s); load average {' -> '.join(f'{v:.1f}' for v in r['load'])}")
    print(f"  {'':<44}{'wall s':>8}{'(range)':>16}{'CPU s':>8}{'(range)':>16}")
    print(f"  {'prepare (python -m stages.prepare)':<44}{r['prepare_s']:>8.2f}{'':>16}{r['prepare_cpu']:>8.2f}")
    for key, label in (("topology", "topology (python -m stages.topology)"),
                       ("engine_alone", "engine alone (same images, warm workers)")):
        rows = r[key]
        med, low, high = np.median(rows, axis=0), rows.min(axis=0), rows.max(axis=0)
        print(f"  {label:<44}{med[0]:>8.2f}{f'({low[0]:.1f}-{high[0]:.1f})':>16}"
              f"{med[1]:>8.2f}{f'({low[1]:.1f}-{high[1]:.1f})':>16}")
    print(f"  topology stage / engine alone (medians): {r['ratio'][0]:.2f}x wall, {r['ratio'][1]:.2f}x CPU; "
          f"{r['bytes'] / 1e9:.2f} GB written")
    engine = float(np.median(r["engine_alone"][:, 0]))
    stage = float(np.median(r["topology"][:, 0]))
    parallel = float(np.median(r["parallel_part"]))
    print(f"  inside the stage (its own timer): the parallel part {parallel:.2f} s ({parallel / engine:.2f}x the "
          f"engine alone), the rest (start, engine load, planning, publishing, exit) {stage - parallel:.2f} s")
    probe = r["page_cache"]
    storing = probe["new_s_per_gb"] * r["bytes"] / 1e9
    print(f"  page cache on this machine ({probe['gb']:.1f} GB probe, CPU s/GB): a new file "
          f"{probe['new_s_per_gb']:.2f}, the same file rewritten in place {probe['cached_s_per_gb']:.2f}; "
          f"the {r['bytes'] / 1e9:.2f} GB of PIs in new pages: {storing:.1f} s of CPU, "
          f"{storing / r['workers']:.1f} s on {r['workers']} workers, so the engine alone plus storing "
          f"its output is {(engine + storing / r['workers']) / engine:.2f}x the engine alone here")
    print(f"  {r['prepare_line']}")
    print(f"  {r['topology_line']}")


def _ddp_worker(rank: int, world: int, port: int, arch: str, batch: int, steps: int, warmup: int,
                channels: int, out) -> None:
    """One rank of the ddp benchmark (torch.multiprocessing.spawn target)."""
    import torch

    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    from pipeline import distributed
    from pipeline.distill import build_method
    from pipeline.models import build_model
    from pipeline.train import train_step

    ctx = distributed.init_from_env("cpu")
    torch.manual_seed(0)
    student = build_model(arch, channels, 10)
    method = build_method("scratch", student, {})
    optimizer = torch.optim.Adam(student.parameters(), lr=5e-4)
    ddp = distributed.wrap(student, torch.device("cpu"))
    generator = torch.Generator().manual_seed(1)
    data = {"x": torch.randn(batch, channels, 32, 32, generator=generator),
            "y": torch.randint(0, 10, (batch,), generator=generator)}
    times = []
    for step in range(warmup + steps):
        started = time.perf_counter()
        train_step(method, ddp, data, optimizer, ctx)  # one process: the world-size-1 case
        if step >= warmup:
            times.append(time.perf_counter() - started)
    if rank == 0:
        out.put(sorted(times)[len(times) // 2])
    distributed.shutdown()


def run_ddp(arch: str, batch: int, steps: int, worlds: list[int], channels: int = 3) -> dict:
    import socket

    import torch.multiprocessing as mp

    res: dict = {"arch": arch, "batch": batch, "steps": steps, "channels": channels, "ms": {}}
    context = mp.get_context("spawn")
    for world in worlds:
        with socket.socket() as sock:  # a free port for this group's rendezvous
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        queue = context.SimpleQueue()
        mp.spawn(_ddp_worker, args=(world, port, arch, batch, steps, 3, channels, queue), nprocs=world)
        res["ms"][world] = 1e3 * queue.get()
    return res


def print_ddp(r: dict) -> None:
    print(f"ddp benchmark: {r['arch']}, global batch {r['batch']} of {r['channels']}x32x32, median of "
          f"{r['steps']} steps (forward + backward + Adam), 1 thread per process, gloo on CPU")
    base = r["ms"][min(r["ms"])]
    print(f"  {'processes':<10}{'ms/step':>10}{'per-rank batch':>16}{'speed-up':>10}")
    for world, ms in r["ms"].items():
        print(f"  {world:<10}{ms:>10.1f}{r['batch'] // world:>16}{base / ms:>9.2f}x")


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tar", default=None,
                        help=f"CIFAR-10 JPEG tar.gz (default: {CIFAR_TAR_RELATIVE}, relative to the repository)")
    parser.add_argument("--root", default=None,
                        help=f"the unpacked tree instead of the tar.gz (documented place: {CIFAR_ROOT_RELATIVE})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("topology", help="engine ripser vs engine fast on real images")
    p.add_argument("--n", type=int, default=200, help="number of images (default 200)")
    _data_arguments(p)
    p.add_argument("--repeat", type=int, default=3, help="timing repeats of the fast engine (best of)")
    p.add_argument("--filtration", default="sequence", choices=["sequence", "cubical"],
                   help="the image recipe's filtration (default sequence, the TGD recipe)")
    p = sub.add_parser("topology-floor", help="PIs the min_max floor zeroes, per filtration")
    p.add_argument("--prepared", default=None, help="a prepared folder ({train,test}.zarr): all its images")
    p.add_argument("--n", type=int, default=300, help="without --prepared: number of benchmark images (default 300)")
    _data_arguments(p)
    p = sub.add_parser("topology-signals", help="engine ripser vs engine fast on sensor windows")
    p.add_argument("--repeat", type=int, default=3, help="timing repeats of the fast engine (best of)")
    p = sub.add_parser("topology-backends", help="the topology stage: loky vs a Dask LocalCluster")
    p.add_argument("--n", type=int, default=400, help="images per split (default 400)")
    _data_arguments(p)
    p.add_argument("--workers", type=int, default=2, help="worker processes for both backends (default 2)")
    p.add_argument("--shard-size", type=int, default=0, help="samples per shard/task (default: ~4 tasks per worker)")
    p.add_argument("--engine", default="fast", choices=["fast", "ripser"])
    p = sub.add_parser("topology-codecs", help="writing/reading one shard of PIs per codec and dtype")
    p.add_argument("--n", type=int, default=4096, help="images in the shard (default 4096, data.shard_size)")
    _data_arguments(p)
    p.add_argument("--repeat", type=int, default=3, help="timing repeats (best of)")
    p = sub.add_parser("topology-stage", help="prepare + topology stages vs the engine alone, same images")
    p.add_argument("--root", default=None, help=f"imagefolder tree (default {CIFAR_ROOT_RELATIVE})")
    p.add_argument("--workers", type=int, default=2, help="topology.n_jobs and the engine's workers (default 2)")
    p.add_argument("--limit-train", type=int, default=None, help="data.limit_train (default: all)")
    p.add_argument("--limit-test", type=int, default=None, help="data.limit_test (default: all)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16"], help="topology.dtype")
    p.add_argument("--engine", default="fast", choices=["fast", "ripser"])
    p.add_argument("--repeat", type=int, default=3, help="rounds of stage and engine alone (medians; default 3)")
    p = sub.add_parser("ddp", help="ms per training step: 1 process vs N gloo processes")
    p.add_argument("--arch", default="wrn16_1", help="model registry name (default wrn16_1, the paper's student)")
    p.add_argument("--batch", type=int, default=64, help="global batch size (default 64)")
    p.add_argument("--steps", type=int, default=20, help="timed steps (median; default 20)")
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="world sizes (default 1 2)")
    p.add_argument("--channels", type=int, default=3, help="input channels (default 3: CIFAR-like)")
    p = sub.add_parser("train", help="the project's training loop vs a bare loop; tgd cached vs uncached")
    p.add_argument("--config", default="paper", choices=["paper", "default"],
                   help="paper: wrn16_3 teachers, wrn16_1 student, 3x32x32 + 6x50x50 (default); "
                        "default: params.yaml's digits sizes")
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--n", type=int, default=384, help="random training images per run (default 384)")
    p.add_argument("--repeat", type=int, default=3, help="runs of every row (median, range; default 3)")
    p.add_argument("--threads", type=int, nargs="+", default=[1],
                   help="torch thread counts, each a table (default 1)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="where every row runs (default cpu); cuda: models and inputs on the GPU, "
                        "timings synchronised")
    p.add_argument("--amp", action="store_true",
                   help="also time every row under bf16 autocast (train.amp; needs --device cuda): "
                        "a table each and the on/off ratios")
    p = sub.add_parser("layout", help="PI teacher: NCHW vs channels-last persistence images")
    p.add_argument("--config", default="paper", choices=["paper", "default"])
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--n", type=int, default=256, help="PIs per run (default 256)")
    p.add_argument("--repeat", type=int, default=3, help="runs per layout (median, range; default 3)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    try:
        _dispatch(parser, args)
    except BenchDataMissing as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.command == "topology-codecs":
        print_topology_codecs(run_topology_codecs(args.n, args.tar, args.root, args.repeat))
    elif args.command == "topology-stage":
        print_topology_stage(run_topology_stage(args.root, args.workers, args.limit_train, args.limit_test,
                                                args.dtype, args.engine, args.repeat))
    elif args.command == "topology-backends":
        print_topology_backends(run_topology_backends(args.n, args.tar, args.root, args.workers, args.shard_size,
                                                      args.engine))
    elif args.command == "layout":
        import torch

        from pipeline.bench_train import print_layout, run_layout

        torch.set_num_threads(args.threads)
        print_layout(run_layout(args.config, args.batch, args.n, args.repeat))
    elif args.command == "train":
        import torch

        from pipeline.bench_train import print_train, run_train

        if args.n <= args.batch:
            parser.error("--n must exceed --batch (the project figure subtracts one batch's run)")
        if args.device == "cuda" and not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA device is available (torch.cuda.is_available() is False)")
        if args.amp and args.device != "cuda":
            parser.error("--amp needs --device cuda: the project ignores train.amp on the CPU")
        print_train(run_train(args.config, args.batch, args.n, args.repeat, args.threads,
                              torch.device(args.device), args.amp))
    elif args.command == "topology-signals":
        print_topology_signals(run_topology_signals(args.repeat))
    elif args.command == "ddp":
        print_ddp(run_ddp(args.arch, args.batch, args.steps, args.processes, args.channels))
    elif args.command == "topology":
        if args.n < 1:
            parser.error("--n must be >= 1")
        print_topology(run_topology(args.n, args.tar, args.root, args.repeat, args.filtration))
    elif args.command == "topology-floor":
        print_topology_floor(run_topology_floor(args.prepared, args.n, args.tar, args.root))


if __name__ == "__main__":
    sys.exit(main())
