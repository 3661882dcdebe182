"""Data set loaders behind one contract: ``load_dataset(cfg) -> Dataset``.

Importing this package registers every loader in ``DATASETS`` (name -> loader) and
``MODALITY`` (name -> "image" | "signal"). Layouts and params: docs/datasets.md.
"""

from pipeline.data.base import (
    DATASETS,
    MODALITY,
    Dataset,
    Split,
    limit_split,
    load_dataset,
    modality_of,
    register,
)

# Imported for their @register side effect.
from pipeline.data import images, pamap2, signals  # noqa: E402,F401  isort: skip

__all__ = [
    "DATASETS",
    "MODALITY",
    "Dataset",
    "Split",
    "limit_split",
    "load_dataset",
    "modality_of",
    "register",
]
