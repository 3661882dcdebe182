"""What both engines share: the pixel grid (persim's, exactly), the value levels, the cleaning rule.

persim's ``PersistenceImager(birth_range, pers_range, pixel_size)`` (persim 0.4.1) builds its grid as

    resolution = (int(width / pixel_size), int(height / pixel_size))          # truncation
    edges      = np.linspace(lo, hi + pixel_size, resolution + 1, endpoint=False)

With ``pixel_size = width / R`` the quotient ``width / pixel_size`` is R only up to rounding, and
``int()`` truncates: for some R it is R - 1 (e.g. [0, 0.3] with R = 27, 31, 54, 62, ...;
[-1, 1] with R = 93, 99, ...; not for the recipe's R = 50 and 64). :func:`make_grid` then nudges
the upper end of the range up by a few ulps (``np.nextafter``) until persim's truncation yields R,
and both engines use that range; the edges move by ~1e-16, far below anything measurable.

persim pixels are square (one ``pixel_size``), so birth_range and pers_range must have the same
width for an R x R image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.errors import TopologyError

#: pairs with lifetime <= MIN_LIFETIME are dropped before the threshold (recipe step 4)
MIN_LIFETIME = 1e-3


@dataclass(frozen=True)
class Grid:
    """Pixel grid of one persistence image, in persim's birth-persistence coordinates."""

    birth_range: tuple[float, float]   # as passed to persim (upper end possibly nudged)
    pers_range: tuple[float, float]
    pixel_size: float
    resolution: int
    sigma: float                       # Gaussian standard deviation (the recipe's)

    @property
    def variance(self) -> float:
        """persim's kernel parameter: a variance (``kernel_params={'sigma': [[v, 0], [0, v]]}``)."""
        return self.sigma ** 2

    @property
    def sd(self) -> float:
        """The standard deviation persim actually uses: ``sqrt(sigma**2)`` (may differ from sigma by an ulp)."""
        return float(np.sqrt(self.variance))

    @property
    def birth_edges(self) -> np.ndarray:
        return _edges(self.birth_range, self.pixel_size, self.resolution)

    @property
    def pers_edges(self) -> np.ndarray:
        return _edges(self.pers_range, self.pixel_size, self.resolution)


def _edges(rng: tuple[float, float], pixel: float, resolution: int) -> np.ndarray:
    # persim.images.PersistenceImager._create_mesh, verbatim
    return np.linspace(rng[0], rng[1] + pixel, resolution + 1, endpoint=False, dtype=np.float64)


def _pair(value, name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise TopologyError(f"{name} must be a pair of numbers (low, high), got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        raise TopologyError(f"{name} must be finite with low < high, got {value!r}")
    return lo, hi


def _nudged_high(lo: float, hi: float, pixel: float, resolution: int) -> float:
    h = hi
    for _ in range(1000):
        if int((h - lo) / pixel) == resolution:
            return h
        h = float(np.nextafter(h, np.inf))
    raise TopologyError(f"cannot make persim's grid give {resolution} pixels over [{lo}, {hi}]")


def make_grid(birth_range, pers_range, resolution, sigma) -> Grid:
    """Validated grid; raises TopologyError naming the bad argument."""
    b = _pair(birth_range, "birth_range")
    p = _pair(pers_range, "pers_range")
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < 1:
        raise TopologyError(f"resolution must be a positive integer, got {resolution!r}")
    resolution = int(resolution)
    try:
        sigma = float(sigma)
    except (TypeError, ValueError):
        raise TopologyError(f"sigma must be a positive number, got {sigma!r}") from None
    if not (math.isfinite(sigma) and sigma > 0):
        raise TopologyError(f"sigma must be a positive number, got {sigma!r}")
    wb, wp = b[1] - b[0], p[1] - p[0]
    if not math.isclose(wb, wp, rel_tol=1e-12, abs_tol=0.0):
        raise TopologyError(
            f"birth_range {list(b)} and pers_range {list(p)} must have the same width: persim's "
            f"PersistenceImager has square pixels, so a {resolution}x{resolution} image needs equal widths")
    pixel = wb / resolution
    b = (b[0], _nudged_high(b[0], b[1], pixel, resolution))
    p = (p[0], _nudged_high(p[0], p[1], pixel, resolution))
    return Grid(birth_range=b, pers_range=p, pixel_size=pixel, resolution=resolution, sigma=sigma)


def uint8_levels() -> np.ndarray:
    """Value of pixel level k as ripser sees it: float64(float32(k / 255)) (ripser computes in float32)."""
    return (np.arange(256, dtype=np.float64) / 255.0).astype(np.float32).astype(np.float64)


def unit_levels() -> np.ndarray:
    """Value of pixel level k as gudhi sees it: k / 255 in float64 (the cubical recipe)."""
    return np.arange(256, dtype=np.float64) / 255.0


def floored(pi: np.ndarray, normalize: bool, min_max: float) -> np.ndarray:
    """Recipe steps 5-6: all zeros when the raw maximum is below min_max (the floor: such an image
    holds only Gaussian tails of points outside the window), else divided by its max if asked."""
    mx = pi.max() if pi.size else 0.0
    if mx < min_max:
        return np.zeros_like(pi)
    return pi / mx if normalize and mx > 0 else pi


def clean(dgm: np.ndarray, threshold: float) -> np.ndarray:
    """Recipe step 4: drop infinite bars, lifetimes <= 1e-3, keep lifetimes > threshold."""
    dgm = np.asarray(dgm, dtype=np.float64).reshape(-1, 2)
    dgm = dgm[np.isfinite(dgm[:, 1])]
    life = dgm[:, 1] - dgm[:, 0]
    dgm = dgm[life > MIN_LIFETIME]
    life = dgm[:, 1] - dgm[:, 0]
    return dgm[life > threshold]
