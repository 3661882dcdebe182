"""Persistence images of images (TGD and cubical recipes) and of sensor windows (TPKD recipe).

Images (docs/topology.md): per filtration of ``filtrations`` (``filtrations.FILTRATIONS``), each
channel / 255 gives diagrams (``sequence``: H0 of a pixel sequence per order; ``cubical``: H0 and
H1 of the 2-D cubical complex); drop the infinite bar, lifetimes <= 1e-3, keep lifetimes >
threshold; persim PersistenceImager image with Gaussian sd sigma and weight persistence / (largest
persistence of the diagram), indexed [birth bin, persistence bin]; an image whose raw maximum is
below ``min_max`` is stored as zeros, any other is divided by its max when ``normalize``.
Signals: the sequence recipe on each channel's values.

Engines (``ENGINES``): ``ripser`` (the reference: ripser or gudhi, + persim) and ``fast`` (numba,
the same output to ~1e-10). Recipes are validated by the params schema (``pipeline.topology.params``), the
one copy of each rule. The math only: the topology stage (pipeline.topology_stage) runs it on shards.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from pipeline.errors import ParamsError, TopologyError
from pipeline.schema import validate_section
from pipeline.topology.filtrations import FILTRATIONS, channel_labels, image_sequences
from pipeline.topology.grid import Grid, clean, make_grid
from pipeline.topology.params import ImageRecipe, SignalRecipe

__all__ = ["ENGINES", "Engine", "get_engine", "FILTRATIONS", "IMAGE_RECIPE", "SIGNAL_RECIPE", "persistence_images", "signal_persistence_images",
           "channel_labels", "image_sequences", "signal_sequences", "Grid",
           "make_grid", "clean"]


# The published recipes (TGD for images, TPKD for signals): what a direct caller of the functions
# below gets for a key it leaves out. The pipeline passes every key from params.yaml, whose
# topology.image / topology.signal sections are tested equal to these.
IMAGE_RECIPE: dict[str, Any] = {
    "filtrations": ["sequence"], "threshold": 0.02, "resolution": 50, "sigma": 0.01,
    "birth_range": [0.0, 0.3], "pers_range": [0.0, 0.3], "orders": ["row", "column"],
    "cubical_range": [0.0, 1.0], "normalize": True, "min_max": 1e-8}
SIGNAL_RECIPE: dict[str, Any] = {
    "threshold": 0.01, "resolution": 64, "sigma": 0.015, "birth_range": [-1.0, 1.0],
    "pers_range": [-1.0, 1.0], "normalize": True}

_ENGINE_NAMES = ("ENGINES", "Engine", "get_engine")


def __getattr__(name: str):
    """The engine registry, imported on first use (PEP 562): importing the recipes, the filtrations'
    channel labels or the figure does not load numba and scipy (0.3-0.7 s of the topology stage's
    parent process, which never computes)."""
    if name in _ENGINE_NAMES:
        from pipeline.topology import engines
        return getattr(engines, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _validated(modality: str, recipe: Mapping[str, Any], caller: str) -> dict[str, Any]:
    """The recipe checked by the params schema (topology.<modality>), missing keys taken from
    the published recipe."""
    model, defaults = (ImageRecipe, IMAGE_RECIPE) if modality == "image" else (SignalRecipe, SIGNAL_RECIPE)
    try:
        recipe = validate_section(model, {**defaults, **recipe}, caller, ("topology", modality))
    except ParamsError as error:
        raise TopologyError(str(error)) from None
    return recipe.model_dump()


def _describe(x) -> str:
    if isinstance(x, np.ndarray):
        return f"dtype {x.dtype}, shape {x.shape}"
    return f"type {type(x).__name__}"


def signal_sequences(signals: np.ndarray) -> np.ndarray:
    """(N, L, C) -> (N, C, L): one sequence per channel."""
    return np.ascontiguousarray(signals.transpose(0, 2, 1))


def _finite(out: np.ndarray, eng: Engine, what: str) -> np.ndarray:
    bad = ~np.isfinite(out)
    if bad.any():
        samples = np.unique(np.nonzero(bad)[0])
        raise TopologyError(f"{what}: engine {eng.name!r} produced NaN or inf persistence images "
                            f"for samples {samples[:10].tolist()}")
    return out


def persistence_images(images, *, engine="ripser", **recipe) -> np.ndarray:
    """uint8 images (N, H, W, C) -> float32 PIs (N, K, R, R), one block of channels per filtration.

    ``recipe``: the ``topology.image`` keys of params.yaml (filtrations, threshold, resolution,
    sigma, birth_range, pers_range, orders, cubical_range, normalize, min_max); missing keys take
    the published recipe's values (``IMAGE_RECIPE``). K = C * (2 per sequence order, or 2 for cubical H0 and H1) summed
    over the filtrations; ``channel_labels(recipe, C)`` names them. Each PI is indexed
    [birth bin, persistence bin] as persim's PersistenceImager.transform returns it.
    """
    from pipeline.topology.engines import get_engine

    eng = get_engine(engine)
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        raise TopologyError(f"persistence_images needs a uint8 array of shape (N, H, W, C), got {_describe(images)}")
    if min(images.shape[1:]) < 1:
        raise TopologyError(f"persistence_images needs images with H, W, C >= 1, got shape {images.shape}")
    full = _validated("image", recipe, "persistence_images")
    blocks = [FILTRATIONS[name].compute(eng, images, full) for name in full["filtrations"]]
    out = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)
    return _finite(out, eng, "persistence_images")


def signal_persistence_images(signals, *, engine="ripser", **recipe) -> np.ndarray:
    """float signals (N, L, C) (already scaled by prepare) -> float32 PIs (N, C, R, R), one per channel.

    ``recipe``: the ``topology.signal`` keys of params.yaml. Values are taken as float32 (ripser
    computes in float32; float64 input is rounded to it).
    """
    from pipeline.topology.engines import get_engine

    eng = get_engine(engine)
    if not isinstance(signals, np.ndarray) or signals.ndim != 3 or not np.issubdtype(signals.dtype, np.floating):
        raise TopologyError(f"signal_persistence_images needs a float32 array of shape (N, L, C), "
                            f"got {_describe(signals)}")
    if min(signals.shape[1:]) < 1:
        raise TopologyError(f"signal_persistence_images needs windows with L, C >= 1, got shape {signals.shape}")
    x = signals.astype(np.float32, copy=False)
    finite = np.isfinite(x).all(axis=(1, 2))
    if not finite.all():
        raise TopologyError(f"signal_persistence_images: NaN or inf in samples "
                            f"{np.nonzero(~finite)[0][:10].tolist()} of the input")
    full = _validated("signal", recipe, "signal_persistence_images")
    grid = make_grid(full["birth_range"], full["pers_range"], full["resolution"], full["sigma"])
    seqs = signal_sequences(x)
    n, k, length = seqs.shape
    pis = eng.images(seqs.reshape(n * k, length), grid=grid, threshold=full["threshold"],
                     normalize=full["normalize"], min_max=0.0)
    out = np.asarray(pis, dtype=np.float32).reshape(n, k, grid.resolution, grid.resolution)
    return _finite(out, eng, "signal_persistence_images")
