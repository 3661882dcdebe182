"""Engine ``fast``: the same recipe as engine ``ripser``, compiled with numba, one core. Sequence
diagrams here; cubical diagrams in ``fast_cubical``; the image kernel both share (cleaning,
weights, dgemm, the min_max floor, normalisation) in ``pi_kernel``.

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

Images: the PI of each diagram's level pairs is ``pi_kernel.pi_of_level_pairs`` for pixels (tabulated
Gaussian-CDF rows, one dgemm per image, shared with ``fast_cubical``); float signals evaluate Phi
per pair here, then take the same floor and normalisation (``pi_kernel.finish_image``).
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

from pipeline.topology.grid import MIN_LIFETIME, Grid, uint8_levels
from pipeline.topology.pi_kernel import finish_image, new_work, pi_of_level_pairs, u8_tables

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
        finish_image(pi, normalize, min_max, out[j])
    return out


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
    """Compile (or load from numba's cache) this module's kernels and the PI kernel; returns the
    seconds it took. Every kernel of the engine, cubical ones included: engines.warmup."""
    import time

    from pipeline.topology.grid import make_grid

    t = time.perf_counter()
    g = make_grid((0.0, 0.3), (0.0, 0.3), 4, 0.01)
    x = np.array([[0, 30, 10, 40, 5, 5]], np.uint8)
    images(x, grid=g, threshold=0.02, normalize=True)
    images(x.astype(np.float32) / 255, grid=g, threshold=0.02, normalize=True)
    diagrams(x)
    diagrams(x.astype(np.float32))
    cleaned_counts(x, 0.02)
    return time.perf_counter() - t
