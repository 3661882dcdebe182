"""float32 -> float16 rounding for `topology.dtype: float16`, bit for bit numpy's, without its slow path.

numpy converts a float32 whose float16 result is subnormal or zero in a scalar software branch
about 4x slower than the rest; persistence images are 40 % such values (the Gaussian tails),
so casting one 4,096-image shard took longer than computing it. This kernel is numpy's own
algorithm (npy_floatbits_to_halfbits: round half to even, subnormals, signed zeros, overflow to
inf, NaN kept NaN) on the bit patterns, one pass, no temporary array.
"""
from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True, inline="always")
def _half_bits(f: np.uint32) -> np.uint16:
    sign = (f & 0x80000000) >> 16
    exponent = f & 0x7F800000
    if exponent >= 0x47800000:   # too large for float16, inf or NaN
        significand = f & 0x007FFFFF
        if exponent == 0x7F800000 and significand != 0:
            bits = 0x7C00 + (significand >> 13)
            return np.uint16(sign + (bits + 1 if bits == 0x7C00 else bits))   # a NaN stays a NaN
        return np.uint16(sign + 0x7C00)
    if exponent <= 0x38000000:   # a float16 subnormal, or zero
        if exponent < 0x33000000:
            return np.uint16(sign)
        significand = (0x00800000 + (f & 0x007FFFFF)) >> (113 - (exponent >> 23))
        if (significand & 0x00003FFF) != 0x00001000 or (f & 0x000007FF) != 0:   # ties to even
            significand += 0x00001000
        return np.uint16(sign + (significand >> 13))
    significand = f & 0x007FFFFF
    if (significand & 0x00003FFF) != 0x00001000:   # ties to even
        significand += 0x00001000
    return np.uint16(sign + ((exponent - 0x38000000) >> 13) + (significand >> 13))


@nb.njit(cache=True, nogil=True)
def _convert(bits: np.ndarray, out: np.ndarray) -> None:
    for i in range(bits.size):
        out[i] = _half_bits(bits[i])


def to_float16(values: np.ndarray, out: np.ndarray) -> np.ndarray:
    """`out[...] = values` for C-contiguous float32 `values` and float16 `out` of the same shape."""
    if values.dtype != np.float32 or out.dtype != np.float16 or values.shape != out.shape \
            or not (values.flags.c_contiguous and out.flags.c_contiguous):
        raise ValueError(f"to_float16 needs C-contiguous float32 values and a float16 out of the same shape, "
                         f"got {values.dtype} {values.shape} -> {out.dtype} {out.shape}")
    _convert(values.reshape(-1).view(np.uint32), out.reshape(-1).view(np.uint16))
    return out
