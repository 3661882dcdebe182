"""Engine ``ripser``: the recipe with ripser and persim, one sequence at a time (the reference)."""
from __future__ import annotations

import numpy as np
from scipy import sparse

from pipeline.topology.grid import Grid, clean

NAME = "ripser"


def linear_weight(birth: np.ndarray, pers: np.ndarray) -> np.ndarray:
    """persim weight callable: persistence / largest persistence of the (cleaned) diagram.

    persim calls ``weight(births, persistences, **weight_params)`` once per diagram with all its
    pairs, so the max is the diagram's. (persim's own ``'persistence'`` weight is ``pers**n``,
    without the division.)
    """
    return pers / np.max(pers)


def lower_star_matrix(x: np.ndarray) -> sparse.coo_matrix:
    """Sparse distance matrix of the lower-star filtration of the path graph on x (recipe step 3)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    i = np.arange(n)
    rows = np.concatenate([i, i[:-1]])
    cols = np.concatenate([i, i[1:]])
    data = np.concatenate([x, np.maximum(x[:-1], x[1:])])
    return sparse.coo_matrix((data, (rows, cols)), shape=(n, n))


def raw_diagram(x: np.ndarray) -> np.ndarray:
    """H0 diagram of one sequence, ripser's output (infinite bar included)."""
    from ripser import ripser

    return ripser(lower_star_matrix(x), maxdim=0, distance_matrix=True)["dgms"][0]


def make_imager(grid: Grid):
    from persim import PersistenceImager

    v = grid.variance
    return PersistenceImager(birth_range=tuple(grid.birth_range), pers_range=tuple(grid.pers_range),
                             pixel_size=grid.pixel_size, weight=linear_weight, weight_params={},
                             kernel="gaussian", kernel_params={"sigma": [[v, 0.0], [0.0, v]]})


def values(s: np.ndarray) -> np.ndarray:
    """Filtration values of one sequence: uint8 pixels are scaled to [0, 1] (k / 255), floats kept."""
    return s / 255.0 if s.dtype == np.uint8 else s


def diagrams(seqs: np.ndarray) -> list[np.ndarray]:
    """Finite pairs (birth, death) of each sequence (rows of seqs), before cleaning."""
    out = []
    for s in seqs:
        d = raw_diagram(values(s))
        out.append(d[np.isfinite(d[:, 1])].astype(np.float64))
    return out


def images(seqs: np.ndarray, *, grid: Grid, threshold: float, normalize: bool) -> np.ndarray:
    """(M, R, R) float64 persistence images of M sequences.

    seqs: (M, L) uint8 pixels (image recipe: values k / 255) or (M, L) float32 values (signal recipe).
    """
    imager = make_imager(grid)
    r = grid.resolution
    out = np.zeros((len(seqs), r, r), dtype=np.float64)
    for m, s in enumerate(seqs):
        dgm = clean(raw_diagram(values(s)), threshold)   # ripser rounds values to float32 itself
        if len(dgm) == 0:
            continue
        pi = np.asarray(imager.transform(dgm, skew=True), dtype=np.float64)
        if normalize:
            mx = pi.max()
            if mx > 0:
                pi = pi / mx
        out[m] = pi
    return out
