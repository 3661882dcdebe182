"""The persistence-image kernel of engine ``fast``, shared by its sequence (``fast``) and cubical
(``fast_cubical``) diagrams: the PI of a list of pixel-level pairs (cleaning, weights, dgemm, the
min_max floor, normalisation) and the per-grid tables it reads.

persim integrates an axis-aligned Gaussian over each pixel, so one pair (b, p) with
weight w adds w * outer(Kb(b), Kp(p)) where Kb(b)[i] = Phi((e_{i+1} - b) / sd) - Phi((e_i - b) / sd)
over the birth edges e (Kp likewise over the persistence edges). A diagram's image is therefore
A^T B with A = rows w_k Kb(b_k) and B = rows Kp(p_k): one small matrix product (BLAS dgemm via
numba's np.dot). For pixels, births take 256 values and persistences lev[d] - lev[b] take 32,640,
so Kb and Kp are tabulated once per grid (Phi = erfc(-x / sqrt 2) / 2 as persim writes it, in
float64) and each pair costs two row lookups; signals evaluate Phi per pair (``fast``).
"""
from __future__ import annotations

import functools

import numba as nb
import numpy as np
from scipy.special import erfc

from pipeline.topology.grid import Grid, uint8_levels, unit_levels


@nb.njit(cache=True, nogil=True)
def finish_image(pi, normalize, min_max, out):
    """Floor (raw max below min_max: all zeros), normalise (float64), store as float32."""
    r1, r2 = pi.shape
    mx = 0.0
    for i in range(r1):
        for j in range(r2):
            if pi[i, j] > mx:
                mx = pi[i, j]
    if mx < min_max:
        out[:, :] = 0.0
        return
    scale = mx if normalize and mx > 0 else 1.0
    for i in range(r1):
        for j in range(r2):
            out[i, j] = pi[i, j] / scale if normalize else pi[i, j]


@nb.njit(cache=True, nogil=True)
def pi_of_level_pairs(pb, pd, k, lev, kb, kb_nz, kp, kp_nz, pair_row, threshold, min_life,
                      normalize, min_max, work, out):
    """The PI of the k pairs (pb[t], pd[t]) of integer levels (values lev[.]) into out (R, R):
    cleaning, linear weight, one dgemm over the birth levels present, floor, normalisation.
    pb and pd are overwritten; ``work = new_work(n, R)`` holds the scratch arrays."""
    life, slot, levels, a, g = work
    r = kb.shape[1]
    kk = 0
    mx = 0.0
    for t in range(k):
        lt = lev[pd[t]] - lev[pb[t]]
        if lt > min_life and lt > threshold:   # recipe step 4
            pb[kk] = pb[t]
            pd[kk] = pd[t]
            life[kk] = lt
            kk += 1
            if lt > mx:
                mx = lt
    u = 0
    for t in range(kk):
        bl = pb[t]
        rp = pair_row[bl, pd[t]]
        if not (kb_nz[bl] and kp_nz[rp]):
            continue                            # adds an exact zero image
        w = life[t] / mx
        s = slot[bl]
        if s < 0:
            s = u
            slot[bl] = s
            levels[u] = bl
            u += 1
            for i in range(r):
                a[s, i] = kb[bl, i]
                g[s, i] = w * kp[rp, i]
        else:
            for i in range(r):
                g[s, i] += w * kp[rp, i]
    if u == 0:
        out[:, :] = 0.0
        return
    for t in range(u):
        slot[levels[t]] = -1
    pi = np.dot(a[:u].T, g[:u])
    finish_image(pi, normalize, min_max, out)


@nb.njit(cache=True, nogil=True)
def new_work(n, r):
    """Scratch arrays of pi_of_level_pairs for up to n pairs and R x R images."""
    return (np.empty(max(n, 1), np.float64),   # lifetimes of the kept pairs
            np.full(256, -1, np.int64),         # birth level -> row of a/g in this image
            np.empty(256, np.int64),            # birth levels present
            np.empty((256, r), np.float64),     # kb rows of the birth levels present
            np.empty((256, r), np.float64))     # sum of w * kp rows per birth level


def _phi(x: np.ndarray) -> np.ndarray:
    return erfc(-x / np.sqrt(2.0)) / 2.0   # persim.images_kernels.norm_cdf


def _rows(mu: np.ndarray, edges: np.ndarray, sd: float) -> np.ndarray:
    c = _phi((edges[None, :] - mu[:, None]) / sd)
    return np.ascontiguousarray(c[:, 1:] - c[:, :-1])


@functools.lru_cache(maxsize=8)
def u8_tables(grid: Grid, exact: bool = False):
    """Per-grid tables for pixel levels: kb (256, R) birth rows; kp (32640, R) persistence rows
    of every level pair b < d; pair_row (256, 256) -> row of kp (or -1); kb_nz, kp_nz: rows not
    all zero (a pair with an all-zero row contributes exactly nothing and is skipped).
    Levels k / 255 as ripser sees them (float32, the sequence recipe) or, with exact, in float64
    as gudhi sees them (the cubical recipe)."""
    lev = unit_levels() if exact else uint8_levels()
    kb = _rows(lev, grid.birth_edges, grid.sd)
    bi, di = np.triu_indices(256, k=1)
    pair_row = np.full((256, 256), -1, np.int64)
    pair_row[bi, di] = np.arange(bi.size)
    kp = _rows(lev[di] - lev[bi], grid.pers_edges, grid.sd)
    return lev, kb, kb.any(axis=1), kp, kp.any(axis=1), pair_row
