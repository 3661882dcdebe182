"""Engine ``fast``: the same recipe as engine ``ripser``, compiled with numba, one core. Sequence
diagrams here; cubical diagrams in ``fast_cubical``, which shares the image kernel
``pi_of_level_pairs`` (cleaning, weights, dgemm, the min_max floor, normalisation).

Diagrams. The H0 diagram of the lower-star filtration of a path graph is a union-find over the
edges (i, i+1) in order of their value max(x_i, x_{i+1}), with the elder rule: merging two
components emits (younger birth, edge value) and keeps the elder birth. On a path a component is
an interval, so "find" is a lookup at the interval's end points (the edge (i, i+1) always joins
the interval ending at i with the one starting at i+1): O(1) per edge, no trees. Edges are
ordered by a counting sort for uint8 pixels (256 levels) and by a sort for float signals. The
infinite bar (the global minimum) is never emitted. ripser computes in float32, so values are
float64(float32(x)): for pixels the table ``uint8_levels()`` = float32(k / 255). Ties: which of
two equal-birth components dies, or which of equal-valued edges goes first, changes no
(birth, death) value, so the multiset of pairs equals ripser's exactly.

Images. persim integrates an axis-aligned Gaussian over each pixel, so one pair (b, p) with
weight w adds w * outer(Kb(b), Kp(p)) where Kb(b)[i] = Phi((e_{i+1} - b) / sd) - Phi((e_i - b) / sd)
over the birth edges e (Kp likewise over the persistence edges). A diagram's image is therefore
A^T B with A = rows w_k Kb(b_k) and B = rows Kp(p_k): one small matrix product (BLAS dgemm via
numba's np.dot). For pixels, births take 256 values and persistences lev[d] - lev[b] take 32,640,
so Kb and Kp are tabulated once per grid (Phi = erfc(-x / sqrt 2) / 2 as persim writes it, in
float64) and each pair costs two row lookups; signals evaluate Phi per pair.
"""
from __future__ import annotations

import functools
import math

import numba as nb
import numpy as np
from scipy.special import erfc

from pipeline.topology.grid import MIN_LIFETIME, Grid, uint8_levels, unit_levels

NAME = "fast"

_SQRT2 = math.sqrt(2.0)


# --------------------------------------------------------------------------- diagrams

@nb.njit(cache=True, nogil=True)
def _merge(order, e, other_end, birth_at, out_b, out_d):
    """Union-find over path edges in the given order; fills out_b/out_d with (younger birth, death)
    for every merge with death > younger birth; returns the number of pairs. birth_at holds the
    vertex births on entry and is overwritten."""
    n = birth_at.shape[0]
    for i in range(n):
        other_end[i] = i
    k = 0
    for t in range(order.shape[0]):
        i = order[t]
        left = other_end[i]        # interval [left, i]
        right = other_end[i + 1]   # interval [i + 1, right]
        bl = birth_at[i]
        br = birth_at[i + 1]
        if bl < br:
            young = br
            old = bl
        else:
            young = bl
            old = br
        d = e[i]
        if d > young:
            out_b[k] = young
            out_d[k] = d
            k += 1
        other_end[left] = right
        other_end[right] = left
        birth_at[left] = old
        birth_at[right] = old
    return k


@nb.njit(cache=True, nogil=True)
def _pairs_u8(s, order, e, counts, other_end, birth_at, out_b, out_d):
    """Pairs of one uint8 sequence as integer levels (birth, death), death > birth."""
    n = s.shape[0]
    if n < 2:
        return 0
    for v in range(256):
        counts[v] = 0
    for i in range(n - 1):
        a = s[i]
        b = s[i + 1]
        m = a if a > b else b
        e[i] = m
        counts[m] += 1
    acc = 0
    for v in range(256):
        c = counts[v]
        counts[v] = acc
        acc += c
    for i in range(n - 1):
        m = e[i]
        order[counts[m]] = i
        counts[m] += 1
    for i in range(n):
        birth_at[i] = s[i]
    return _merge(order[:n - 1], e, other_end, birth_at, out_b, out_d)


@nb.njit(cache=True, nogil=True)
def _pairs_float(x, e, other_end, birth_at, out_b, out_d):
    """Pairs of one float sequence (values as given), death > birth."""
    n = x.shape[0]
    if n < 2:
        return 0
    for i in range(n - 1):
        a = x[i]
        b = x[i + 1]
        e[i] = a if a > b else b
    order = np.argsort(e[:n - 1], kind="mergesort")
    for i in range(n):
        birth_at[i] = x[i]
    return _merge(order, e, other_end, birth_at, out_b, out_d)


@nb.njit(cache=True, nogil=True)
def _diagrams_u8(seqs, lev):
    m, n = seqs.shape
    order = np.empty(max(n - 1, 1), np.int64)
    e = np.empty(max(n - 1, 1), np.int64)
    counts = np.empty(256, np.int64)
    other_end = np.empty(n, np.int64)
    birth_at = np.empty(n, np.int64)
    pb = np.empty(n, np.int64)
    pd = np.empty(n, np.int64)
    out = []
    for j in range(m):
        k = _pairs_u8(seqs[j], order, e, counts, other_end, birth_at, pb, pd)
        d = np.empty((k, 2), np.float64)
        for t in range(k):
            d[t, 0] = lev[pb[t]]
            d[t, 1] = lev[pd[t]]
        out.append(d)
    return out


@nb.njit(cache=True, nogil=True)
def _diagrams_float(seqs):
    m, n = seqs.shape
    e = np.empty(max(n - 1, 1), np.float64)
    other_end = np.empty(n, np.int64)
    birth_at = np.empty(n, np.float64)
    pb = np.empty(n, np.float64)
    pd = np.empty(n, np.float64)
    x = np.empty(n, np.float64)
    out = []
    for j in range(m):
        for i in range(n):
            x[i] = seqs[j, i]
        k = _pairs_float(x, e, other_end, birth_at, pb, pd)
        d = np.empty((k, 2), np.float64)
        for t in range(k):
            d[t, 0] = pb[t]
            d[t, 1] = pd[t]
        out.append(d)
    return out


@nb.njit(cache=True, nogil=True)
def _counts_u8(seqs, lev, threshold, min_life):
    m, n = seqs.shape
    order = np.empty(max(n - 1, 1), np.int64)
    e = np.empty(max(n - 1, 1), np.int64)
    counts = np.empty(256, np.int64)
    other_end = np.empty(n, np.int64)
    birth_at = np.empty(n, np.int64)
    pb = np.empty(n, np.int64)
    pd = np.empty(n, np.int64)
    out = np.zeros(m, np.int64)
    for j in range(m):
        k = _pairs_u8(seqs[j], order, e, counts, other_end, birth_at, pb, pd)
        for t in range(k):
            lt = lev[pd[t]] - lev[pb[t]]
            if lt > min_life and lt > threshold:
                out[j] += 1
    return out


def cleaned_counts(seqs: np.ndarray, threshold: float) -> np.ndarray:
    """Number of pairs left after cleaning, per uint8 sequence (diagram work only; for timing)."""
    return _counts_u8(np.ascontiguousarray(seqs, dtype=np.uint8), uint8_levels(), float(threshold), MIN_LIFETIME)


def diagrams(seqs: np.ndarray) -> list[np.ndarray]:
    """Finite pairs (birth, death) of each row of seqs, before cleaning (uint8: values k / 255)."""
    seqs = np.ascontiguousarray(seqs)
    if seqs.dtype == np.uint8:
        return list(_diagrams_u8(seqs, uint8_levels()))
    return list(_diagrams_float(seqs.astype(np.float32)))


# --------------------------------------------------------------------------- images

@nb.njit(cache=True, nogil=True)
def _finish(pi, normalize, min_max, out):
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
    _finish(pi, normalize, min_max, out)


@nb.njit(cache=True, nogil=True)
def new_work(n, r):
    """Scratch arrays of pi_of_level_pairs for up to n pairs and R x R images."""
    return (np.empty(max(n, 1), np.float64),   # lifetimes of the kept pairs
            np.full(256, -1, np.int64),         # birth level -> row of a/g in this image
            np.empty(256, np.int64),            # birth levels present
            np.empty((256, r), np.float64),     # kb rows of the birth levels present
            np.empty((256, r), np.float64))     # sum of w * kp rows per birth level


@nb.njit(cache=True, nogil=True)
def _images_u8(seqs, lev, kb, kb_nz, kp, kp_nz, pair_row, threshold, min_life, normalize, min_max, out):
    m, n = seqs.shape
    order = np.empty(max(n - 1, 1), np.int64)
    e = np.empty(max(n - 1, 1), np.int64)
    counts = np.empty(256, np.int64)
    other_end = np.empty(n, np.int64)
    birth_at = np.empty(n, np.int64)
    pb = np.empty(n, np.int64)
    pd = np.empty(n, np.int64)
    work = new_work(n, kb.shape[1])
    for j in range(m):
        k = _pairs_u8(seqs[j], order, e, counts, other_end, birth_at, pb, pd)
        pi_of_level_pairs(pb, pd, k, lev, kb, kb_nz, kp, kp_nz, pair_row, threshold, min_life,
                          normalize, min_max, work, out[j])
    return out


@nb.njit(cache=True, nogil=True)
def _phi_row(mu, edges, sd, dst):
    """dst[i] = Phi((edges[i+1] - mu) / sd) - Phi((edges[i] - mu) / sd), Phi as persim writes it."""
    prev = math.erfc(-((edges[0] - mu) / sd) / _SQRT2) / 2.0
    for i in range(dst.shape[0]):
        cur = math.erfc(-((edges[i + 1] - mu) / sd) / _SQRT2) / 2.0
        dst[i] = cur - prev
        prev = cur


@nb.njit(cache=True, nogil=True)
def _images_float(seqs, edges_b, edges_p, sd, threshold, min_life, normalize, min_max, out):
    m, n = seqs.shape
    r = edges_b.shape[0] - 1
    e = np.empty(max(n - 1, 1), np.float64)
    other_end = np.empty(n, np.int64)
    birth_at = np.empty(n, np.float64)
    pb = np.empty(n, np.float64)
    pd = np.empty(n, np.float64)
    life = np.empty(n, np.float64)
    x = np.empty(n, np.float64)
    a = np.empty((n, r), np.float64)
    b = np.empty((n, r), np.float64)
    for j in range(m):
        for i in range(n):
            x[i] = seqs[j, i]
        k = _pairs_float(x, e, other_end, birth_at, pb, pd)
        kk = 0
        mx = 0.0
        for t in range(k):
            lt = pd[t] - pb[t]
            if lt > min_life and lt > threshold:
                pb[kk] = pb[t]
                life[kk] = lt
                kk += 1
                if lt > mx:
                    mx = lt
        if kk == 0:
            out[j, :, :] = 0.0
            continue
        for t in range(kk):
            w = life[t] / mx
            _phi_row(pb[t], edges_b, sd, a[t])
            _phi_row(life[t], edges_p, sd, b[t])
            for i in range(r):
                a[t, i] *= w
        pi = np.dot(a[:kk].T, b[:kk])
        _finish(pi, normalize, min_max, out[j])
    return out


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


def images(seqs: np.ndarray, *, grid: Grid, threshold: float, normalize: bool, min_max: float = 0.0) -> np.ndarray:
    """(M, R, R) float32 persistence images of M sequences (rows of seqs): uint8 pixels (values
    k / 255, the image recipe) or float values (the signal recipe)."""
    seqs = np.ascontiguousarray(seqs)
    r = grid.resolution
    out = np.empty((seqs.shape[0], r, r), dtype=np.float32)
    if seqs.shape[0] == 0:
        return out
    if seqs.dtype == np.uint8:
        lev, kb, kb_nz, kp, kp_nz, pair_row = u8_tables(grid)
        _images_u8(seqs, lev, kb, kb_nz, kp, kp_nz, pair_row, float(threshold), MIN_LIFETIME, bool(normalize),
                   float(min_max), out)
    else:
        _images_float(seqs.astype(np.float32), grid.birth_edges, grid.pers_edges, grid.sd,
                      float(threshold), MIN_LIFETIME, bool(normalize), float(min_max), out)
    return out


def warmup() -> float:
    """Compile (or load from numba's cache) every kernel, cubical ones included; returns the seconds it took."""
    import time

    from pipeline.topology import fast_cubical
    from pipeline.topology.grid import make_grid

    t = time.perf_counter()
    g = make_grid((0.0, 0.3), (0.0, 0.3), 4, 0.01)
    x = np.array([[0, 30, 10, 40, 5, 5]], np.uint8)
    images(x, grid=g, threshold=0.02, normalize=True)
    images(x.astype(np.float32) / 255, grid=g, threshold=0.02, normalize=True)
    diagrams(x)
    diagrams(x.astype(np.float32))
    cleaned_counts(x, 0.02)
    fast_cubical.images(x.reshape(1, 2, 3), grid=g, threshold=0.02, normalize=True)
    fast_cubical.diagrams(x.reshape(1, 2, 3))
    fast_cubical.cleaned_counts(x.reshape(1, 2, 3), 0.02)
    return time.perf_counter() - t
