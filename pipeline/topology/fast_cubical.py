"""Engine ``fast``, cubical recipe: H0 and H1 of a channel's 2-D cubical complex, compiled with numba.

The complex is gudhi's ``CubicalComplex(top_dimensional_cells=channel)``: pixels are the squares,
and every edge and vertex takes the smallest value of the squares around it. Its sublevel set at t
is therefore the union of the closed squares of the pixels with value <= t, so

- **H0**: two such squares are connected when they share an edge *or a corner*: 8-connectivity.
  Pixels enter in increasing order; a pixel joins its present 8-neighbours' components by
  union-find, the elder rule emitting (younger birth, the pixel's value) at each merge.
- **H1** by Alexander duality: a hole of the sublevel set is a bounded component of its
  complement, the pixels with value > t, which touch across an edge only (a shared corner belongs
  to the sublevel set as soon as one of its squares does): 4-connectivity, plus the outside of the
  image, to which every border pixel is adjacent. A hole is born when adding a pixel splits the
  complement and dies when its last (largest) pixel enters. Run backwards, that is H0 of the
  superlevel filtration of the pixels with 4-connectivity and an outside vertex that exists from
  the start: pixels enter in decreasing order, a component is born at its largest value, and when
  a pixel of value v merges two components the younger one (smaller maximum m; the outside is the
  eldest) gives the H1 pair (v, m).

Pairs are emitted only when death > birth, and only their values matter: which of two tied
components survives changes no pair, so the multiset of pairs is gudhi's exactly. Values are pixel
levels k; ``unit_levels()[k] = k / 255`` in float64 is what gudhi sees. Pixels are ordered by a
counting sort (256 levels). The PI of each diagram is ``pi_kernel.pi_of_level_pairs``, as for sequences.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from pipeline.topology.grid import MIN_LIFETIME, Grid, unit_levels
from pipeline.topology.pi_kernel import new_work, pi_of_level_pairs, u8_tables

OUTSIDE_BIRTH = 256  # the outside of the image, older than any pixel level in the superlevel filtration


@nb.njit(cache=True, nogil=True)
def _load(channel, v, counts, order):
    """Pixels into the padded grid (row length w + 2, a one-cell frame around the image): v[P] =
    level; order = the pixels' padded indices by increasing level (counting sort)."""
    h, w = channel.shape
    stride = w + 2
    for level in range(256):
        counts[level] = 0
    for i in range(h):
        for j in range(w):
            v[(i + 1) * stride + j + 1] = channel[i, j]
            counts[channel[i, j]] += 1
    acc = 0
    for level in range(256):
        c = counts[level]
        counts[level] = acc
        acc += c
    for i in range(h):
        for j in range(w):
            order[counts[channel[i, j]]] = (i + 1) * stride + j + 1
            counts[channel[i, j]] += 1


@nb.njit(cache=True, nogil=True)
def _find(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]   # path halving
        i = parent[i]
    return i


@nb.njit(cache=True, nogil=True)
def _merge_low(parent, birth, root, q, value, out_b, out_d, k):
    """Sublevel (H0): join q's component to `root` (the entering pixel's) at `value`; the elder
    (lower birth) survives, the younger's pair is emitted when it has positive length.
    Returns (the root, the number of pairs)."""
    rq = _find(parent, q)
    if rq == root:
        return root, k
    if birth[rq] > birth[root]:
        young = rq
    else:
        young = root
        root = rq
    if value > birth[young]:
        out_b[k] = birth[young]
        out_d[k] = value
        k += 1
    parent[young] = root
    return root, k


@nb.njit(cache=True, nogil=True)
def _merge_high(parent, birth, root, q, value, out_b, out_d, k):
    """Superlevel (H1 by duality): as _merge_low with the elder the higher birth (larger maximum);
    the younger component of maximum m gives the hole (value, m)."""
    rq = _find(parent, q)
    if rq == root:
        return root, k
    if birth[rq] < birth[root]:
        young = rq
    else:
        young = root
        root = rq
    if birth[young] > value:
        out_b[k] = value
        out_d[k] = birth[young]
        k += 1
    parent[young] = root
    return root, k


@nb.njit(cache=True, nogil=True)
def _h0_pairs(v, n, stride, order, parent, birth, out_b, out_d):
    """H0 pairs (levels) of the sublevel filtration, 8-connectivity; the infinite bar is not
    emitted. The frame cells stay absent (parent -1)."""
    parent[:] = -1
    k = 0
    for t in range(n):
        p = order[t]
        value = v[p]
        parent[p] = p
        birth[p] = value
        root = p
        up = parent[p - stride] >= 0
        down = parent[p + stride] >= 0
        left = parent[p - 1] >= 0
        right = parent[p + 1] >= 0
        if up:
            root, k = _merge_low(parent, birth, root, p - stride, value, out_b, out_d, k)
        if down:
            root, k = _merge_low(parent, birth, root, p + stride, value, out_b, out_d, k)
        if left:
            root, k = _merge_low(parent, birth, root, p - 1, value, out_b, out_d, k)
        if right:
            root, k = _merge_low(parent, birth, root, p + 1, value, out_b, out_d, k)
        # a present diagonal neighbour beside a present edge neighbour already shares its component
        if not (up or left) and parent[p - stride - 1] >= 0:
            root, k = _merge_low(parent, birth, root, p - stride - 1, value, out_b, out_d, k)
        if not (up or right) and parent[p - stride + 1] >= 0:
            root, k = _merge_low(parent, birth, root, p - stride + 1, value, out_b, out_d, k)
        if not (down or left) and parent[p + stride - 1] >= 0:
            root, k = _merge_low(parent, birth, root, p + stride - 1, value, out_b, out_d, k)
        if not (down or right) and parent[p + stride + 1] >= 0:
            root, k = _merge_low(parent, birth, root, p + stride + 1, value, out_b, out_d, k)
    return k


@nb.njit(cache=True, nogil=True)
def _h1_pairs(v, n, stride, order, parent, birth, out_b, out_d):
    """H1 pairs (levels) of the sublevel filtration, as H0 of the superlevel filtration of the
    pixels with 4-connectivity; the frame is the outside, one component present from the start
    (root 0, birth above every level)."""
    parent[:] = 0
    birth[0] = OUTSIDE_BIRTH
    for t in range(n):
        parent[order[t]] = -1
    k = 0
    for t in range(n - 1, -1, -1):
        p = order[t]
        value = v[p]
        parent[p] = p
        birth[p] = value
        root = p
        if parent[p - stride] >= 0:
            root, k = _merge_high(parent, birth, root, p - stride, value, out_b, out_d, k)
        if parent[p + stride] >= 0:
            root, k = _merge_high(parent, birth, root, p + stride, value, out_b, out_d, k)
        if parent[p - 1] >= 0:
            root, k = _merge_high(parent, birth, root, p - 1, value, out_b, out_d, k)
        if parent[p + 1] >= 0:
            root, k = _merge_high(parent, birth, root, p + 1, value, out_b, out_d, k)
    return k


@nb.njit(cache=True, nogil=True)
def _work(h, w):
    cells = (h + 2) * (w + 2)
    return (np.empty(cells, np.int64), np.empty(h * w, np.int64), np.empty(256, np.int64),
            np.empty(cells, np.int64), np.empty(cells, np.int64), np.empty(h * w + 1, np.int64),
            np.empty(h * w + 1, np.int64))


@nb.njit(cache=True, nogil=True)
def _pairs(channel, dim, work):
    """Level pairs of one channel in dimension dim into work[5], work[6]; returns their number.
    Dimension 0 loads the channel; dimension 1 reuses that load (call 0 first)."""
    v, order, counts, parent, birth, pb, pd = work
    h, w = channel.shape
    if dim == 0:
        _load(channel, v, counts, order)
        return _h0_pairs(v, h * w, w + 2, order, parent, birth, pb, pd)
    return _h1_pairs(v, h * w, w + 2, order, parent, birth, pb, pd)


@nb.njit(cache=True, nogil=True)
def _diagrams(channels, lev):
    m, h, w = channels.shape
    work = _work(h, w)
    out = []
    for c in range(m):
        for dim in range(2):
            k = _pairs(channels[c], dim, work)
            d = np.empty((k, 2), np.float64)
            for t in range(k):
                d[t, 0] = lev[work[5][t]]
                d[t, 1] = lev[work[6][t]]
            out.append(d)
    return out


@nb.njit(cache=True, nogil=True)
def _images(channels, lev, kb, kb_nz, kp, kp_nz, pair_row, threshold, min_life, normalize, min_max, out):
    m, h, w = channels.shape
    work = _work(h, w)
    pi_work = new_work(h * w + 1, kb.shape[1])
    for c in range(m):
        for dim in range(2):
            k = _pairs(channels[c], dim, work)
            pi_of_level_pairs(work[5], work[6], k, lev, kb, kb_nz, kp, kp_nz, pair_row, threshold,
                              min_life, normalize, min_max, pi_work, out[c, dim])
    return out


def diagrams(channels: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(H0, H1) finite pairs (birth, death) of each uint8 channel (M, H, W), values k / 255, before
    cleaning; H0 without the infinite bar."""
    channels = np.ascontiguousarray(channels, dtype=np.uint8)
    if len(channels) == 0:
        return []
    flat = _diagrams(channels, unit_levels())
    return [(flat[2 * c], flat[2 * c + 1]) for c in range(len(channels))]


def images(channels: np.ndarray, *, grid: Grid, threshold: float, normalize: bool,
           min_max: float = 0.0) -> np.ndarray:
    """(M, 2, R, R) float32 persistence images [H0, H1] of M uint8 channels (M, H, W)."""
    channels = np.ascontiguousarray(channels, dtype=np.uint8)
    r = grid.resolution
    out = np.empty((channels.shape[0], 2, r, r), dtype=np.float32)
    if channels.shape[0] == 0:
        return out
    lev, kb, kb_nz, kp, kp_nz, pair_row = u8_tables(grid, exact=True)
    _images(channels, lev, kb, kb_nz, kp, kp_nz, pair_row, float(threshold), MIN_LIFETIME,
            bool(normalize), float(min_max), out)
    return out


@nb.njit(cache=True, nogil=True)
def _counts(channels, lev, threshold, min_life):
    m, h, w = channels.shape
    work = _work(h, w)
    out = np.zeros((m, 2), np.int64)
    for c in range(m):
        for dim in range(2):
            k = _pairs(channels[c], dim, work)
            for t in range(k):
                lt = lev[work[6][t]] - lev[work[5][t]]
                if lt > min_life and lt > threshold:
                    out[c, dim] += 1
    return out


def cleaned_counts(channels: np.ndarray, threshold: float) -> np.ndarray:
    """(M, 2) numbers of H0 and H1 pairs left after cleaning per uint8 channel (diagram work only;
    for timing)."""
    return _counts(np.ascontiguousarray(channels, dtype=np.uint8), unit_levels(), float(threshold), MIN_LIFETIME)


def warmup() -> float:
    """Compile (or load from numba's cache) this module's kernels; returns the seconds it took."""
    import time

    from pipeline.topology.grid import make_grid

    t = time.perf_counter()
    g = make_grid((0.0, 0.3), (0.0, 0.3), 4, 0.01)
    x = np.array([[[0, 30, 10], [40, 5, 5]]], np.uint8)
    images(x, grid=g, threshold=0.02, normalize=True)
    diagrams(x)
    cleaned_counts(x, 0.02)
    return time.perf_counter() - t
