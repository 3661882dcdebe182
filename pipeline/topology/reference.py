"""Engine ``ripser``, the reference: one diagram at a time with ripser (sequences) or gudhi
(cubical complexes), persistence images with persim."""
from __future__ import annotations

import numpy as np
from scipy import sparse

from pipeline.topology.grid import Grid, clean, floored

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


def _image(imager, dgm: np.ndarray, threshold: float, normalize: bool, min_max: float, r: int) -> np.ndarray:
    """The PI of one raw diagram: cleaned, persim, floor, normalisation (recipe steps 4-6)."""
    dgm = clean(dgm, threshold)
    if len(dgm) == 0:
        return np.zeros((r, r))
    pi = np.asarray(imager.transform(dgm, skew=True), dtype=np.float64)
    return floored(pi, normalize, min_max)


def images(seqs: np.ndarray, *, grid: Grid, threshold: float, normalize: bool, min_max: float = 0.0) -> np.ndarray:
    """(M, R, R) float64 persistence images of M sequences.

    seqs: (M, L) uint8 pixels (image recipe: values k / 255) or (M, L) float32 values (signal recipe).
    """
    imager = make_imager(grid)
    r = grid.resolution
    out = np.zeros((len(seqs), r, r), dtype=np.float64)
    for m, s in enumerate(seqs):   # ripser rounds values to float32 itself
        out[m] = _image(imager, raw_diagram(values(s)), threshold, normalize, min_max, r)
    return out


def cubical_raw_diagrams(channel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """gudhi's H0 (infinite bar included) and H1 diagrams of one uint8 channel (H, W), pixels / 255
    as the top-dimensional cells, coefficients Z/2."""
    import gudhi

    complex_ = gudhi.CubicalComplex(top_dimensional_cells=channel / 255.0)
    complex_.compute_persistence(homology_coeff_field=2, min_persistence=0.0)
    return tuple(np.asarray(complex_.persistence_intervals_in_dimension(d), np.float64).reshape(-1, 2)
                 for d in (0, 1))


def cubical_diagrams(channels: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(H0, H1) finite pairs (birth, death) of each channel (M, H, W), before cleaning."""
    out = []
    for ch in channels:
        h0, h1 = cubical_raw_diagrams(ch)
        out.append((h0[np.isfinite(h0[:, 1])], h1[np.isfinite(h1[:, 1])]))
    return out


def cubical_images(channels: np.ndarray, *, grid: Grid, threshold: float, normalize: bool,
                   min_max: float = 0.0) -> np.ndarray:
    """(M, 2, R, R) float64 persistence images [H0, H1] of M uint8 channels (M, H, W)."""
    imager = make_imager(grid)
    r = grid.resolution
    out = np.zeros((len(channels), 2, r, r), dtype=np.float64)
    for m, ch in enumerate(channels):
        for dim, dgm in enumerate(cubical_raw_diagrams(ch)):
            out[m, dim] = _image(imager, dgm, threshold, normalize, min_max, r)
    return out
