"""Persistence images of images (TGD recipe) and of sensor windows (TPKD recipe).

Recipe (REFERENCE.md sections 1 and 4; docs/topology.md): every channel of a sample is read as a
1-D sequence (images: pixels / 255, raster order and, for "column", the transposed channel's
raster order; signals: the channel's values); H0 diagram of the lower-star filtration of the path
graph on it; drop the infinite bar, lifetimes <= 1e-3, keep lifetimes > threshold; persim
PersistenceImager image with Gaussian sd sigma and weight persistence / (largest persistence of
the diagram), indexed [birth bin, persistence bin]; each image divided by its max when > 0.

Engines (``ENGINES``): ``ripser`` (ripser + persim, the reference) and ``fast`` (numba, same
output to ~1e-12). The math only: the topology stage (pipeline.topology_job) runs it on shards.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from pipeline.errors import TopologyError
from pipeline.topology import fast as _fast
from pipeline.topology import reference as _reference
from pipeline.topology.grid import Grid, check_threshold, clean, make_grid

__all__ = ["ENGINES", "Engine", "get_engine", "persistence_images", "signal_persistence_images",
           "image_sequences", "signal_sequences", "Grid", "make_grid", "clean"]

ORDERS = ("row", "column")


@dataclass(frozen=True)
class Engine:
    """An engine: ``images(seqs, grid=, threshold=, normalize=) -> (M, R, R)`` for M sequences
    (rows of a uint8 or float array), and ``diagrams(seqs) -> [ (k, 2) finite (birth, death) ]``."""

    name: str
    images: Callable[..., np.ndarray]
    diagrams: Callable[[np.ndarray], list]
    description: str


ENGINES: dict[str, Engine] = {
    "ripser": Engine("ripser", _reference.images, _reference.diagrams,
                     "reference: ripser (sparse lower-star distance matrix) + persim PersistenceImager"),
    "fast": Engine("fast", _fast.images, _fast.diagrams,
                   "numba: path union-find diagrams + tabulated Gaussian-CDF rows and one dgemm per image"),
}


def get_engine(engine) -> Engine:
    if isinstance(engine, Engine):
        return engine
    if not isinstance(engine, str) or engine not in ENGINES:
        raise TopologyError(f"unknown topology engine {engine!r} (topology.engine); "
                            f"known engines: {', '.join(sorted(ENGINES))}")
    return ENGINES[engine]


# --------------------------------------------------------------------------- inputs

def _describe(x) -> str:
    if isinstance(x, np.ndarray):
        return f"dtype {x.dtype}, shape {x.shape}"
    return f"type {type(x).__name__}"


def _check_orders(orders) -> tuple[str, ...]:
    if isinstance(orders, str):
        orders = (orders,)
    try:
        orders = tuple(orders)
    except TypeError:
        raise TopologyError(f"orders must be a list of {list(ORDERS)}, got {orders!r}") from None
    if not orders:
        raise TopologyError("orders must name at least one pixel order (row, column)")
    bad = [o for o in orders if o not in ORDERS]
    if bad:
        raise TopologyError(f"unknown pixel order(s) {bad} in orders; known: {list(ORDERS)}")
    return orders


def _check_bool(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TopologyError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def _check_n_jobs(n_jobs) -> int:
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0:
        raise TopologyError(f"n_jobs must be a non-zero integer (-1 = all cores), got {n_jobs!r}")
    return int(n_jobs)


def image_sequences(images: np.ndarray, orders: Sequence[str] = ORDERS) -> np.ndarray:
    """(N, H, W, C) -> (N, len(orders) * C, H * W) pixel sequences, channel order
    [c0 row, c1 row, ..., c0 column, ...]; "column" is the raster order of the transposed channel."""
    n, h, w, c = images.shape
    parts = []
    for o in orders:
        if o == "row":
            parts.append(images.transpose(0, 3, 1, 2).reshape(n, c, h * w))
        else:
            parts.append(images.transpose(0, 3, 2, 1).reshape(n, c, w * h))
    return np.ascontiguousarray(np.concatenate(parts, axis=1))


def signal_sequences(signals: np.ndarray) -> np.ndarray:
    """(N, L, C) -> (N, C, L): one sequence per channel."""
    return np.ascontiguousarray(signals.transpose(0, 2, 1))


# --------------------------------------------------------------------------- driver

def _compute(eng: Engine, seqs: np.ndarray, grid: Grid, threshold: float, normalize: bool) -> np.ndarray:
    n, k, length = seqs.shape
    pis = eng.images(seqs.reshape(n * k, length), grid=grid, threshold=threshold, normalize=normalize)
    return np.asarray(pis, dtype=np.float32).reshape(n, k, grid.resolution, grid.resolution)


def _run(eng: Engine, seqs: np.ndarray, grid: Grid, threshold: float, normalize: bool,
         n_jobs: int, what: str) -> np.ndarray:
    n = seqs.shape[0]
    workers = n_jobs if n_jobs > 0 else max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    if workers == 1 or n < 2:
        out = _compute(eng, seqs, grid, threshold, normalize)
    else:
        import joblib

        blocks = np.array_split(np.arange(n), min(n, 4 * workers))
        parts = joblib.Parallel(n_jobs=workers)(
            joblib.delayed(_compute)(eng, seqs[b[0]:b[-1] + 1], grid, threshold, normalize)
            for b in blocks if len(b))
        out = np.concatenate(parts, axis=0)
    bad = ~np.isfinite(out)
    if bad.any():
        samples = np.unique(np.nonzero(bad)[0])
        raise TopologyError(f"{what}: engine {eng.name!r} produced NaN or inf persistence images "
                            f"for samples {samples[:10].tolist()}")
    return out


def persistence_images(images, *, engine="ripser", threshold=0.02, resolution=50, sigma=0.01,
                       birth_range=(0.0, 0.3), pers_range=(0.0, 0.3), orders=("row", "column"),
                       normalize=True, n_jobs=1) -> np.ndarray:
    """uint8 images (N, H, W, C) -> float32 PIs (N, len(orders) * C, R, R).

    Channel order [c0 row, c1 row, ..., c0 column, c1 column, ...]; each PI indexed
    [birth bin, persistence bin] as persim's PersistenceImager.transform returns it.
    n_jobs: joblib processes over blocks of samples (1 = serial).
    """
    eng = get_engine(engine)
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        raise TopologyError(f"persistence_images needs a uint8 array of shape (N, H, W, C), got {_describe(images)}")
    if min(images.shape[1:]) < 1:
        raise TopologyError(f"persistence_images needs images with H, W, C >= 1, got shape {images.shape}")
    orders = _check_orders(orders)
    grid = make_grid(birth_range, pers_range, resolution, sigma)
    threshold = check_threshold(threshold)
    normalize = _check_bool(normalize, "normalize")
    n_jobs = _check_n_jobs(n_jobs)
    seqs = image_sequences(images, orders)
    return _run(eng, seqs, grid, threshold, normalize, n_jobs, "persistence_images")


def signal_persistence_images(signals, *, engine="ripser", threshold=0.01, resolution=64, sigma=0.015,
                              birth_range=(-1.0, 1.0), pers_range=(-1.0, 1.0), normalize=True,
                              n_jobs=1) -> np.ndarray:
    """float signals (N, L, C) (already scaled by prepare) -> float32 PIs (N, C, R, R), one per channel.

    Values are taken as float32 (ripser computes in float32; float64 input is rounded to it).
    """
    eng = get_engine(engine)
    if not isinstance(signals, np.ndarray) or signals.ndim != 3 or not np.issubdtype(signals.dtype, np.floating):
        raise TopologyError(f"signal_persistence_images needs a float32 array of shape (N, L, C), "
                            f"got {_describe(signals)}")
    if min(signals.shape[1:]) < 1:
        raise TopologyError(f"signal_persistence_images needs windows with L, C >= 1, got shape {signals.shape}")
    x = signals.astype(np.float32, copy=False)
    finite = np.isfinite(x).all(axis=(1, 2))
    if not finite.all():
        raise TopologyError(f"signal_persistence_images: NaN or inf in samples "
                            f"{np.nonzero(~finite)[0][:10].tolist()} of the input")
    grid = make_grid(birth_range, pers_range, resolution, sigma)
    threshold = check_threshold(threshold)
    normalize = _check_bool(normalize, "normalize")
    n_jobs = _check_n_jobs(n_jobs)
    return _run(eng, signal_sequences(x), grid, threshold, normalize, n_jobs, "signal_persistence_images")
