"""pipeline.float16: numpy's float32 -> float16 rounding, bit for bit, on every kind of value (checked
once over all 2^32 float32 bit patterns: 0 mismatches, docs/topology.md)."""
import numpy as np
import pytest

from pipeline.float16 import to_float16


def _edge_values() -> np.ndarray:
    """Each float16 value as float32, its neighbours a few ulps away and the midpoints between
    float16 values (the ties), both signs; plus zero, inf, NaN and float32's extremes."""
    halves = np.arange(0, 0x7C01, dtype=np.uint16).view(np.float16).astype(np.float32)
    bits = halves.view(np.uint32).astype(np.int64)
    near = (bits[:, None] + np.arange(-3, 4)).clip(0, 0x7F800000).astype(np.uint32).view(np.float32).ravel()
    mids = ((halves[:-1].astype(np.float64) + halves[1:]) / 2).astype(np.float32)
    special = np.array([0.0, np.inf, np.nan, np.finfo(np.float32).max, np.finfo(np.float32).tiny, 1e-45,
                        65504.0, 65520.0, 65519.99], np.float32)
    values = np.concatenate([near, mids, special])
    return np.concatenate([values, -values])


@pytest.mark.parametrize("values", [
    _edge_values(),
    np.random.default_rng(0).integers(0, 2 ** 32, 2 ** 22, dtype=np.uint64).astype(np.uint32).view(np.float32),
    np.random.default_rng(1).lognormal(-12, 6, 2 ** 20).astype(np.float32),   # persistence images' tails
], ids=["edges", "random-bits", "tiny-values"])
def test_equals_numpys_astype(values):
    ours = to_float16(values, np.empty(values.shape, np.float16))
    with np.errstate(over="ignore"):   # values beyond float16's range become inf, as they should
        expected = values.astype(np.float16)
    nan = np.isnan(expected)
    assert np.array_equal(np.isnan(ours), nan)   # a NaN stays a NaN (its payload may differ)
    assert np.array_equal(ours.view(np.uint16)[~nan], expected.view(np.uint16)[~nan])   # signed zeros too


def test_refuses_what_it_cannot_convert_in_place():
    with pytest.raises(ValueError, match="float32 values and a float16 out"):
        to_float16(np.zeros(4, np.float64), np.empty(4, np.float16))
    with pytest.raises(ValueError, match=r"\(4,\) -> float16 \(5,\)"):
        to_float16(np.zeros(4, np.float32), np.empty(5, np.float16))
