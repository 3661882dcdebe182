"""Persistence images of one block of samples: the engine calls a task makes, and their sizes.

The engine (pipeline.topology, numba and scipy) is imported on first use, in the workers only:
the parent process plans the work without loading it (`pi_shape`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.errors import TopologyError

# Samples per engine call. A call's output is one fresh array: 4,096 CIFAR-10 images' PIs (245 MB)
# cost the kernel half as much time as the engine's own work (page faults), 128 (7.7 MB) nothing
# measurable (docs/topology.md); the blocks land in a buffer that a task reuses.
ENGINE_BLOCK = 128


def recipe_for(cfg: dict[str, Any], modality: str) -> dict[str, Any]:
    """The persistence-image recipe of a modality (topology.image or topology.signal)."""
    return dict(cfg[modality])


def persistence_images(images: np.ndarray, **recipe) -> np.ndarray:
    """pipeline.topology's, imported on first use: the parent process never needs the engine."""
    from pipeline.topology import persistence_images as images_of

    return images_of(images, **recipe)


def signal_persistence_images(signals: np.ndarray, **recipe) -> np.ndarray:
    from pipeline.topology import signal_persistence_images as images_of

    return images_of(signals, **recipe)


def compute_block(x: np.ndarray, modality: str, engine: str, recipe: dict[str, Any],
                  first: int = 0, out: np.ndarray | None = None) -> np.ndarray:
    """Persistence images of one block of samples (into `out`, when given, of len(x) rows), in
    engine calls of ENGINE_BLOCK samples; NaN or inf is an error, never stored.

    `first` is the index of the block's first sample in its split, so that an error names the
    culprit samples by their index in the store.
    """
    images_of = persistence_images if modality == "image" else signal_persistence_images
    for start in range(0, max(len(x), 1), ENGINE_BLOCK):
        pis = np.asarray(images_of(x[start:start + ENGINE_BLOCK], engine=engine, **recipe))
        if not np.isfinite(pis).all():
            bad = (np.unique(np.nonzero(~np.isfinite(pis.reshape(len(pis), -1)))[0]) + first + start).tolist()
            more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
            raise TopologyError(f"non-finite (NaN or inf) persistence images for samples {bad[:10]}{more} "
                                f"(engine {engine}); nothing was stored for them")
        if out is None:
            if len(pis) == len(x):   # one call made all of it
                return pis
            out = np.empty((len(x), *pis.shape[1:]), pis.dtype)
        out[start:start + len(pis)] = pis
    return out


def warm_up(sample_shape: tuple[int, ...], dtype: str, modality: str, engine: str, recipe: dict[str, Any]) -> None:
    """Load the engine in a worker (numba's compiled kernels, the grid tables) on one blank sample."""
    compute_block(np.zeros((1, *sample_shape), np.dtype(dtype)), modality, engine, recipe)


def pi_shape(x_shape: tuple[int, ...], modality: str, recipe: dict[str, Any]) -> tuple[int, int, int]:
    """(channels, R, R) of a sample's persistence images, as pipeline.topology.channel_labels
    counts them: per image channel, len(orders) for each `sequence` and 2 (H0, H1) for each
    `cubical` filtration; one per signal channel. The parent never loads the engine to learn it."""
    per_channel = 1
    if modality == "image":
        per_channel = sum(len(recipe["orders"]) if name == "sequence" else 2 for name in recipe["filtrations"])
    channels = x_shape[-1] * per_channel
    return channels, recipe["resolution"], recipe["resolution"]
