"""Image data set loaders: x uint8 (N,H,W,C), y int64. Layouts: docs/datasets.md."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.data.base import Dataset, Split, register, require_root
from pipeline.data.imagefiles import class_folders, list_images, load_labelled_files
from pipeline.errors import DataError, ParamsError


def _dataset(name, classes, parts, skipped=()) -> Dataset:
    splits = {s: Split(x, y) for s, (x, y) in parts.items()}
    return Dataset(name, "image", list(classes), splits, list(skipped))


# ---------------------------------------------------------------- digits (embedded)


@register("digits", modality="image")
def load_digits(cfg: dict) -> Dataset:
    """sklearn's 8x8 digits, scaled 0..16 -> 0..255 and upsampled to SxSx1 (S: `digits_size`,
    32 unless given; params.yaml's default is 16).

    Upsampling is bilinear (PIL): smooth strokes like a natural image, rather than 8x8 blocks
    of equal pixels (nearest) that would give flat plateaus to the topology. 16x16 holds what
    the 8x8 originals hold at a quarter of 32x32's convolution cost.
    """
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    frac = cfg.get("test_fraction")
    frac = 0.2 if frac is None else frac
    if not 0 < frac < 1:
        raise ParamsError(f"data.test_fraction must be in (0, 1), got {frac}")
    size = int(cfg.get("digits_size") or 32)
    if size < 8:
        raise ParamsError(f"data.digits_size must be >= 8 (the originals are 8x8), got {size}")
    d = sk_digits()
    small = np.round(d.images * (255 / 16)).astype(np.uint8)
    x = np.stack(
        [np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in small]
    )[..., None]
    y = d.target.astype(np.int64)
    tr, te = train_test_split(
        np.arange(len(y)), test_size=frac, stratify=y, random_state=int(cfg.get("split_seed") or 0)
    )
    tr.sort(), te.sort()  # keep file order inside each split
    parts = {"train": (x[tr], y[tr]), "test": (x[te], y[te])}
    return _dataset("digits", [str(i) for i in range(10)], parts)


# ---------------------------------------------------------------- cifar10 (python pickles)

CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]


class _SafeUnpickler(pickle.Unpickler):
    """CIFAR batches only hold dicts, lists, bytes and numpy arrays: refuse anything else
    so a tampered file cannot run code."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"forbidden global {module}.{name}")
        return super().find_class(module, name)


def _read_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            # latin1: the official batches were pickled by Python 2 (numpy needs latin1).
            d = _SafeUnpickler(f, encoding="latin1").load()
    except Exception as e:  # noqa: BLE001
        raise DataError(f"cannot read CIFAR-10 pickle {str(path)!r}: {e}") from e
    if not isinstance(d, dict):
        raise DataError(f"CIFAR-10 pickle {str(path)!r} does not hold a dict")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}


def _cifar_batch(path: Path, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    d = _read_pickle(path)
    if "data" not in d or "labels" not in d:
        raise DataError(f"CIFAR-10 pickle {str(path)!r} lacks b'data' or b'labels'")
    data = np.asarray(d["data"], dtype=np.uint8)
    y = np.asarray(d["labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(y):
        raise DataError(f"{str(path)!r}: data must be (N,3072) with N labels, got {data.shape}")
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise DataError(f"{str(path)!r}: labels outside 0..{n_classes - 1}")
    # rows are 1024 R, 1024 G, 1024 B, each row-major 32x32 -> CHW -> HWC
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), y


@register("cifar10", modality="image")
def load_cifar10(cfg: dict) -> Dataset:
    """torchvision's on-disk CIFAR-10: root/cifar-10-batches-py/ (or that folder itself)."""
    root = require_root(cfg, "cifar10")
    folder = root if (root / "batches.meta").exists() else root / "cifar-10-batches-py"
    missing = [f for f in CIFAR_FILES if not (folder / f).is_file()]
    if missing:
        raise DataError(
            f"cifar10: expected root/cifar-10-batches-py/{{data_batch_1..5,test_batch,"
            f"batches.meta}}; missing in {str(folder)!r}: {', '.join(missing)}"
        )
    names = _read_pickle(folder / "batches.meta").get("label_names")
    if not names:
        raise DataError(f"{str(folder / 'batches.meta')!r} lacks b'label_names'")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    train = [_cifar_batch(folder / f"data_batch_{i}", len(classes)) for i in range(1, 6)]
    parts = {
        "train": (np.concatenate([b[0] for b in train]), np.concatenate([b[1] for b in train])),
        "test": _cifar_batch(folder / "test_batch", len(classes)),
    }
    return _dataset("cifar10", classes, parts)


# ---------------------------------------------------------------- class-folder layouts


def _folder_split(split_dir: Path, classes: list[str] | None):
    """Paths and labels of split_dir/<class>/<image>; classes None = take them from here."""
    found = class_folders(split_dir)
    if classes is None:
        classes = found
    index = {c: i for i, c in enumerate(classes)}
    absent = [c for c in found if c not in index]
    if absent:
        raise DataError(f"{str(split_dir)!r}: classes absent from train: {', '.join(absent)}")
    paths, labels = [], []
    empty = []
    for c in found:
        files = list_images(split_dir / c)
        empty += [] if files else [c]
        paths += files
        labels += [index[c]] * len(files)
    if not paths:
        raise DataError(
            f"empty split: no .png/.jpg/.jpeg images in {str(split_dir)!r}/<class>/"
        )
    if empty:  # a class without images would silently train and test without it
        raise DataError(f"{str(split_dir / empty[0])!r}: empty class folder (no .png/.jpg/.jpeg "
                        "images); add its images or remove the folder")
    return classes, paths, labels


def _load_class_folders(cfg: dict, name: str, train_dirs: list[str], test_dir: str) -> Dataset:
    root = require_root(cfg, name)
    needed = [*train_dirs, test_dir]
    missing = [d for d in needed if not (root / d).is_dir()]
    if missing:
        raise DataError(
            f"{name}: expected folders root/{{{','.join(needed)}}}/<class>/<image> under "
            f"{str(root)!r}; missing: {', '.join(missing)}"
        )
    classes = None
    for d in train_dirs:
        found = class_folders(root / d)
        classes = sorted(set(classes or []) | set(found))
    files = {"train": ([], []), "test": ([], [])}
    for d in needed:
        _, paths, labels = _folder_split(root / d, classes)
        split = "test" if d == test_dir else "train"
        files[split][0].extend(paths)  # train folders in order: train, then valid (cinic10)
        files[split][1].extend(labels)
    parts, skipped = load_labelled_files(files, cfg, name)
    return _dataset(name, classes, parts, skipped)


@register("imagefolder", modality="image")
def load_imagefolder(cfg: dict) -> Dataset:
    """root/{train,test}/<class>/<image>.{png,jpg,jpeg}; classes = sorted train folders."""
    return _load_class_folders(cfg, "imagefolder", ["train"], "test")


@register("cinic10", modality="image")
def load_cinic10(cfg: dict) -> Dataset:
    """root/{train,valid,test}/<class>/*.png; valid joins train if cinic10_valid_into_train."""
    train = ["train", "valid"] if cfg.get("cinic10_valid_into_train") else ["train"]
    return _load_class_folders(cfg, "cinic10", train, "test")


# ---------------------------------------------------------------- tiny-imagenet-200


def _tiny_root(root: Path) -> Path:
    for cand in (root, root / "tiny-imagenet-200"):
        if (cand / "wnids.txt").is_file():
            return cand
    raise DataError(
        f"tinyimagenet: no wnids.txt in {str(root)!r} or {str(root / 'tiny-imagenet-200')!r}; "
        "expected the tiny-imagenet-200 layout (wnids.txt, words.txt, train/, val/)"
    )


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"tinyimagenet: missing file {str(path)!r}")
    return [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


@register("tinyimagenet", modality="image")
def load_tinyimagenet(cfg: dict) -> Dataset:
    """tiny-imagenet-200: train/<wnid>/images/*.JPEG; test = val/images + val_annotations.txt."""
    root = _tiny_root(require_root(cfg, "tinyimagenet"))
    wnids = sorted({ln.strip() for ln in _read_lines(root / "wnids.txt")})
    words = {}
    for ln in _read_lines(root / "words.txt"):
        wnid, _, names = ln.partition("\t")
        words[wnid.strip()] = names.split(",")[0].strip()
    index = {w: i for i, w in enumerate(wnids)}

    train_paths, train_y = [], []
    for w in wnids:
        folder = root / "train" / w / "images"
        if not folder.is_dir():
            raise DataError(f"tinyimagenet: missing train folder {str(folder)!r}")
        files = list_images(folder)
        train_paths += files
        train_y += [index[w]] * len(files)

    test_paths, test_y = [], []
    for ln in _read_lines(root / "val" / "val_annotations.txt"):
        fname, wnid = (ln.split("\t") + [""])[:2]
        if wnid not in index:
            raise DataError(
                f"{str(root / 'val' / 'val_annotations.txt')!r}: class {wnid!r} of {fname!r} "
                "is absent from train (wnids.txt)"
            )
        path = root / "val" / "images" / fname
        if not path.is_file():
            raise DataError(f"tinyimagenet: val image {str(path)!r} listed but missing")
        test_paths.append(path)
        test_y.append(index[wnid])
    for split, paths in (("train", train_paths), ("val", test_paths)):
        if not paths:
            raise DataError(f"empty split: no images for {split!r} under {str(root)!r}")

    files = {"train": (train_paths, train_y), "test": (test_paths, test_y)}
    parts, skipped = load_labelled_files(files, cfg, "tinyimagenet")
    names = [words.get(w, w) for w in wnids]
    # a first name can repeat across wnids; keep class names unique for reports
    classes = [f"{n} ({w})" if names.count(n) > 1 else n for n, w in zip(names, wnids, strict=True)]
    return _dataset("tinyimagenet", classes, parts, skipped)
