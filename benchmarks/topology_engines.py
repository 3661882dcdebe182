"""The topology engines side by side: `topology` (ripser vs fast on CIFAR-10 test images, one
filtration), `topology-floor` (PIs the min_max floor zeroes) and `topology-signals` (ripser vs
fast on the basicmotions windows). One core each."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from benchmarks.data import bench_images
from benchmarks.timing import one_core, timed


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
        started = time.perf_counter()
        tables()
        res["tables_s"] = time.perf_counter() - started

        ref, t_ref = timed(lambda: persistence_images(images, engine="ripser", **recipe), 1)
        _, t_ref_dg = timed(ref_diagrams, 1)
        fst, t_fast = timed(lambda: persistence_images(images, engine="fast", **recipe), repeat)
        ncl, t_fast_dg = timed(fast_diagrams, repeat)
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
    from pipeline.store import SPLITS, open_split, shard_slices, split_path
    from pipeline.topology import IMAGE_RECIPE

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
    from pipeline.topology import fast as fast_mod
    from pipeline.topology import signal_persistence_images

    dataset = load_dataset({"name": "basicmotions"})
    scale_signals(dataset)
    windows = np.concatenate([dataset.splits[s].x for s in ("train", "test")])
    cfg = load_params().topology.signal.model_dump()  # the recipe of params.yaml
    res: dict = {"source": f"basicmotions, {len(windows)} windows of {windows.shape[1]} x {windows.shape[2]} channels",
                 "n": len(windows)}
    with one_core():
        res["compile_s"] = fast_mod.warmup()
        signal_persistence_images(windows[:1], engine="fast", **cfg)  # grid tables, once
        ref, t_ref = timed(lambda: signal_persistence_images(windows, engine="ripser", **cfg), 1)
        fst, t_fast = timed(lambda: signal_persistence_images(windows, engine="fast", **cfg), repeat)
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
