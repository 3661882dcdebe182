"""The engines: the same persistence images computed two ways.

Their names are known without loading this module (``pipeline.topology.engine_names.ENGINES``,
a lazy registry whose entries are ``RIPSER`` and ``FAST`` below); a new engine is an ``Engine``
here (or in a module of its own) plus its line in engine_names.py.

``ripser`` is the reference: ripser (sequence diagrams) or gudhi (cubical diagrams), then persim's
PersistenceImager, one diagram at a time. ``fast`` computes the same images with numba (union-find
diagrams, tabulated Gaussian-CDF rows and one dgemm per image); tests hold it to the reference.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pipeline.errors import TopologyError
from pipeline.topology.engine_names import ENGINES
from pipeline.topology import fast as _fast
from pipeline.topology import fast_cubical as _fast_cubical
from pipeline.topology import reference as _reference


@dataclass(frozen=True)
class Engine:
    """An engine. For M sequences (rows of a uint8 or float array):
    ``images(seqs, grid=, threshold=, normalize=, min_max=) -> (M, R, R)`` and
    ``diagrams(seqs) -> [(k, 2) finite (birth, death)]``; for M uint8 channels (M, H, W):
    ``cubical_images(channels, grid=, threshold=, normalize=, min_max=) -> (M, 2, R, R)`` ([H0, H1])
    and ``cubical_diagrams(channels) -> [(H0 pairs, H1 pairs)]`` (finite, before cleaning)."""

    name: str
    images: Callable
    diagrams: Callable
    cubical_images: Callable
    cubical_diagrams: Callable
    description: str


RIPSER = Engine("ripser", _reference.images, _reference.diagrams, _reference.cubical_images,
                _reference.cubical_diagrams,
                "reference: ripser (sequences) or gudhi (cubical complexes) + persim PersistenceImager")
FAST = Engine("fast", _fast.images, _fast.diagrams, _fast_cubical.images, _fast_cubical.diagrams,
              "numba: union-find diagrams + tabulated Gaussian-CDF rows and one dgemm per image")


def get_engine(engine) -> Engine:
    """An Engine as it is, or the registered engine of that name."""
    if isinstance(engine, Engine):
        return engine
    if not isinstance(engine, str) or engine not in ENGINES:
        raise TopologyError(f"unknown topology engine {engine!r} (topology.engine); "
                            f"known engines: {', '.join(ENGINES.names())}")
    return ENGINES[engine]


def warmup() -> float:
    """Compile (or load from numba's cache) every kernel of engine ``fast``, sequence and cubical;
    returns the seconds it took."""
    return _fast.warmup() + _fast_cubical.warmup()
