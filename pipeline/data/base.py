"""Data set contract, the loader registry and the generic steps every loader shares.

A loader is one function ``(cfg: dict) -> Dataset`` registered by name::

    @register("mynew", modality="image")
    def load_mynew(cfg): ...

``load_dataset(cfg)`` dispatches on ``cfg["name"]``, checks the result and applies
``limit_train`` / ``limit_test`` so loaders never have to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.errors import DataError, ParamsError
from pipeline.registry import Registry

MODALITIES = ("image", "signal")


@dataclass
class Split:
    x: np.ndarray  # uint8 (N,H,W,C) for images; float32 (N,L,C) for signal windows
    y: np.ndarray  # int64 (N,), indices into Dataset.classes

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Dataset:
    name: str
    modality: str  # "image" or "signal"
    classes: list[str]
    splits: dict[str, Split]  # keys "train", "test"
    skipped: list[str] = field(default_factory=list)  # corrupt files skipped (skip_corrupt)


Loader = Callable[[dict], Dataset]
DATASETS = Registry("data set")  # name -> loader
MODALITY: dict[str, str] = {}


def register(name: str, *, modality: str) -> Callable[[Loader], Loader]:
    """Decorator: make a loader reachable as ``data.name: <name>``."""
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")

    def deco(fn: Loader) -> Loader:
        DATASETS.register(name)(fn)
        MODALITY[name] = modality
        return fn

    return deco


def modality_of(name: str) -> str:
    """Modality of a data set from params alone (no loading)."""
    if name not in MODALITY:
        raise DataError(_unknown(name))
    return MODALITY[name]


def _unknown(name: str) -> str:
    return f"unknown data.name {name!r}; known data sets: {', '.join(sorted(DATASETS))}"


def load_dataset(cfg: dict) -> Dataset:
    """Load the data set named by ``cfg["name"]`` (cfg = params.yaml ``data`` section)."""
    name = cfg.get("name")
    if name not in DATASETS:
        raise DataError(_unknown(name))
    ds = DATASETS[name](cfg)
    _check(ds, cfg)
    seed = int(cfg.get("split_seed") or 0)
    for split, key in (("train", "limit_train"), ("test", "limit_test")):
        limit = cfg.get(key)
        if limit is not None:
            ds.splits[split] = limit_split(ds.splits[split], int(limit), seed, key=key)
    return ds


def _check(ds: Dataset, cfg: dict) -> None:
    """Guard the contract once here so every loader is held to it."""
    where = cfg.get("root") or ds.name
    for split in ("train", "test"):
        if split not in ds.splits or len(ds.splits[split]) == 0:
            raise DataError(f"{ds.name}: split {split!r} is empty (data in {where})")
        s = ds.splits[split]
        want = np.uint8 if ds.modality == "image" else np.float32
        ndim = 4 if ds.modality == "image" else 3
        assert s.x.dtype == want and s.x.ndim == ndim, (ds.name, split, s.x.dtype, s.x.shape)
        assert s.y.dtype == np.int64 and s.y.shape == (len(s.x),), (ds.name, split, s.y.shape)
        assert s.y.min() >= 0 and s.y.max() < len(ds.classes), (ds.name, split)


def limit_split(split: Split, n: int, seed: int, key: str = "limit") -> Split:
    """Keep a deterministic, class-stratified subset of ``n`` samples (``limit_indices``)."""
    keep = limit_indices(split.y, n, seed, key)
    return split if keep is None else Split(split.x[keep], split.y[keep])


def limit_indices(y: np.ndarray, n: int, seed: int, key: str = "limit") -> np.ndarray | None:
    """Indices of a deterministic, class-stratified subset of ``n`` of the labels ``y``, or None
    when all are kept. File-based loaders apply it to their file lists before decoding.

    Per class quota = n * class share (largest remainder, ties to the lower class id);
    each class then keeps its first ``quota`` samples in a seeded permutation. Kept
    samples stay in their original order.
    """
    if n < 1:
        raise ParamsError(f"data.{key} must be >= 1 or null, got {n}")
    if n >= len(y):
        return None
    classes, counts = np.unique(y, return_counts=True)
    exact = n * counts / counts.sum()
    quota = np.floor(exact).astype(int)
    order = np.lexsort((classes, -(exact - quota)))  # biggest remainder first
    quota[order[: n - quota.sum()]] += 1
    perm = np.random.default_rng(seed).permutation(len(y))
    keep = np.concatenate(
        [perm[y[perm] == c][:q] for c, q in zip(classes, quota, strict=True)]
    )
    keep.sort()
    return keep


def limited_files(split: str, paths: list, labels: list, cfg: dict) -> tuple[list, list]:
    """A split's file list cut to ``data.limit_<split>`` before anything is decoded: the same
    subset ``limit_split`` keeps of the decoded split (selection uses the labels only)."""
    key = f"limit_{split}"
    if cfg.get(key) is None:
        return paths, labels
    keep = limit_indices(np.asarray(labels, np.int64), int(cfg[key]), int(cfg.get("split_seed") or 0), key)
    if keep is None:
        return paths, labels
    return [paths[i] for i in keep], [labels[i] for i in keep]


def require_root(cfg: dict, name: str) -> Path:
    """``data.root`` as an existing local folder, or a DataError naming it."""
    root = cfg.get("root")
    if root is None or str(root).strip() == "":
        raise DataError(f"data set {name!r} needs data.root (a folder), but data.root is null")
    root = str(root)
    if root.startswith("file://"):
        root = root[len("file://") :]
    elif "://" in root:
        # Why: loaders read many small files with PIL/np; copy remote sets locally first.
        raise DataError(f"data.root {root!r}: only local folders are supported for {name!r}")
    path = Path(root).expanduser()
    if path.is_file():
        raise DataError(f"data.root {str(path)!r} is a file, not a folder; name the folder that holds the {name!r} data")
    if not path.is_dir():
        raise DataError(f"data.root {str(path)!r} does not exist or is not a folder")
    return path


def encode_labels(
    train_labels: np.ndarray, test_labels: np.ndarray, where: str, classes: list | None = None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Map raw labels to int64 indices into sorted train classes (or the given order)."""
    if classes is None:
        classes = sorted(set(train_labels.tolist()))
    index = {c: i for i, c in enumerate(classes)}
    missing = sorted(set(test_labels.tolist()) - set(train_labels.tolist()))
    if missing:
        raise DataError(f"{where}: test classes absent from train: {missing}")
    unknown = sorted(set(train_labels.tolist()) - set(index))
    if unknown:
        raise DataError(f"{where}: labels not in the class list: {unknown}")

    def enc(labels):
        return np.fromiter((index[v] for v in labels.tolist()), np.int64, len(labels))

    return [str(c) for c in classes], enc(train_labels), enc(test_labels)
