"""The image recipe's filtrations (``topology.image.filtrations``): how images become PI channels.

- ``sequence`` (the TGD recipe): each channel read as a 1-D pixel sequence per order of
  ``orders`` (raster ``row``, transposed ``column``), H0 of its lower-star filtration;
  channels [c0 row, c1 row, ..., c0 column, ...].
- ``cubical``: each channel as the 2-D cubical complex whose squares are the pixels (gudhi's
  ``CubicalComplex(top_dimensional_cells=...)``), H0 (8-connectivity) and H1 of its sublevel
  filtration, on the grid ``cubical_range`` x ``cubical_range``; channels [c0 H0, c1 H0, ..., c0 H1, ...].

A recipe's filtrations are stacked in list order. ``channel_labels`` names every channel of the
result, in the same order, for figures.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from pipeline.topology.grid import make_grid

if TYPE_CHECKING:  # the engines (numba, scipy) load on first use: the topology stage's parent never needs them
    from pipeline.topology.engines import Engine


@dataclass(frozen=True)
class Filtration:
    name: str
    compute: Callable[[Engine, np.ndarray, dict], np.ndarray]   # (engine, uint8 (N,H,W,C), recipe) -> (N,K,R,R)
    labels: Callable[[dict, Sequence[str]], list[str]]          # (recipe, channel names) -> K titles


def image_sequences(images: np.ndarray, orders: Sequence[str] = ("row", "column")) -> np.ndarray:
    """(N, H, W, C) -> (N, len(orders) * C, H * W) pixel sequences, channel order
    [c0 row, c1 row, ..., c0 column, ...]; "column" is the raster order of the transposed channel."""
    n, h, w, c = images.shape
    parts = []
    for o in orders:
        if o == "row":
            parts.append(images.transpose(0, 3, 1, 2).reshape(n, c, h * w))
        else:
            parts.append(images.transpose(0, 3, 2, 1).reshape(n, c, w * h))
    return np.ascontiguousarray(np.concatenate(parts, axis=1))


def _options(recipe: dict) -> dict[str, Any]:
    return {"threshold": recipe["threshold"], "normalize": recipe["normalize"], "min_max": recipe["min_max"]}


def _sequence(eng: Engine, images: np.ndarray, recipe: dict) -> np.ndarray:
    grid = make_grid(recipe["birth_range"], recipe["pers_range"], recipe["resolution"], recipe["sigma"])
    seqs = image_sequences(images, recipe["orders"])
    n, k, length = seqs.shape
    pis = eng.images(seqs.reshape(n * k, length), grid=grid, **_options(recipe))
    return np.asarray(pis, dtype=np.float32).reshape(n, k, grid.resolution, grid.resolution)


def _cubical(eng: Engine, images: np.ndarray, recipe: dict) -> np.ndarray:
    grid = make_grid(recipe["cubical_range"], recipe["cubical_range"], recipe["resolution"], recipe["sigma"])
    n, h, w, c = images.shape
    r = grid.resolution
    channels = np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(n * c, h, w)
    pis = np.asarray(eng.cubical_images(channels, grid=grid, **_options(recipe)), dtype=np.float32)
    # (N*C, 2, R, R) -> (N, 2, C, R, R): all channels' H0, then all channels' H1
    return np.ascontiguousarray(pis.reshape(n, c, 2, r, r).transpose(0, 2, 1, 3, 4)).reshape(n, 2 * c, r, r)


FILTRATIONS: dict[str, Filtration] = {
    "sequence": Filtration("sequence", _sequence,
                           lambda recipe, names: [f"{c}, {o} sequence, H0" for o in recipe["orders"] for c in names]),
    "cubical": Filtration("cubical", _cubical,
                          lambda recipe, names: [f"{c}, cubical, H{d}" for d in (0, 1) for c in names]),
}


def channel_names(n_channels: int) -> list[str]:
    """Display names of the input channels: gray, R G B, or c0, c1, ..."""
    if n_channels == 1:
        return ["gray"]
    if n_channels == 3:
        return ["R", "G", "B"]
    return [f"c{i}" for i in range(n_channels)]


def channel_labels(recipe: dict, n_channels: int, modality: str = "image") -> list[str]:
    """A title for every PI channel of the recipe, in storage order (signals: one H0 per channel)."""
    names = channel_names(n_channels) if modality == "image" else [f"channel {i}" for i in range(n_channels)]
    if modality != "image":
        return [f"{c}, sequence, H0" for c in names]
    return [label for f in recipe["filtrations"] for label in FILTRATIONS[f].labels(recipe, names)]
