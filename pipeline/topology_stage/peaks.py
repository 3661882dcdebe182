"""Per-channel counts of a shard's degenerate persistence images, in one pass (numba: loaded by
the workers only): the samples whose PI is all zeros, and those whose mass lies nearly all in one
pixel. pipeline.topology_stage.checks turns the training split's counts into a verdict."""
from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True)
def degenerate_counts(block: np.ndarray, peak_share: float) -> tuple[np.ndarray, np.ndarray]:
    """(all-zero, one-pixel) sample counts per channel of (N, K, M) float32 values: a PI is
    one-pixel when it is not all zeros and its largest value exceeds `peak_share` of its sum."""
    n, k, m = block.shape
    empty, peaked = np.zeros(k, np.int64), np.zeros(k, np.int64)
    for i in range(n):
        for c in range(k):
            top, low, total = -np.inf, np.inf, 0.0
            for j in range(m):
                v = np.float64(block[i, c, j])
                top = max(top, v)
                low = min(low, v)
                total += v
            if top == 0.0 and low == 0.0:
                empty[c] += 1
            elif total > 0.0 and top > peak_share * total:
                peaked[c] += 1
    return empty, peaked
