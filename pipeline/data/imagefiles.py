"""Decode folders of image files into one uint8 (N,H,W,C) array.

Shared by the file-based image sets (imagefolder, cinic10, tinyimagenet). Rules:
grey images give C=1, everything else is converted to RGB (palette, RGBA: alpha dropped,
CMYK...); if a set mixes grey and colour, all images become RGB. All images must have one
size. Corrupt files fail, or are skipped and listed when ``skip_corrupt`` is true.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from PIL import Image
from tqdm import tqdm

from pipeline.data.base import limited_files
from pipeline.errors import DataError

IMAGE_EXTS = (".png", ".jpg", ".jpeg")
GREY_MODES = ("L", "1", "LA", "I", "I;16", "F")

# Measured (60k CIFAR JPEGs, 2 shared cores): serial ~7k images/s; threads gain nothing
# (tiny decodes are Python-bound, GIL); 2 loky processes were 25 % faster on an idle box but
# slower under load, as pickling results back eats the gain. So processes only from 4 CPUs.
PARALLEL_MIN = 8000  # images
PARALLEL_MIN_CPUS = 4
BLOCK = 4000  # one task per block of thousands (one task per image is slower than serial)


def list_images(folder: Path) -> list[Path]:
    """Image files of one folder (not recursive), sorted by name, hidden files ignored."""
    return sorted(
        folder / f
        for f in os.listdir(folder)
        if not f.startswith(".") and f.lower().endswith(IMAGE_EXTS)
    )


def class_folders(split_dir: Path) -> list[str]:
    return sorted(d.name for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith("."))


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):  # respects taskset/cgroup pinning on Linux
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _decode(path: Path, size: tuple[int, int] | None) -> np.ndarray | str:
    """(H,W) grey or (H,W,3) RGB array, or an error string for a corrupt file.

    The size is read from the header first (PIL opens lazily): an image of another size than
    the set's fails at once, before its pixels are decoded (an 8000x8000 image in a 32x32 set
    would otherwise cost 200 MB and seconds)."""
    try:
        with Image.open(path) as im:
            if size is not None and im.size != size:
                raise DataError(_mixed_sizes(path, im.size, size))
            im.load()
            if im.mode != "L" and im.mode != "RGB":
                im = im.convert("L" if im.mode in GREY_MODES else "RGB")
            return np.asarray(im, dtype=np.uint8)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - PIL raises many types for broken files
        return f"{type(e).__name__}: {e}"


def _mixed_sizes(path: Path, size: tuple[int, int], expected: tuple[int, int]) -> str:
    return (f"images of mixed sizes: {str(path)!r} is {size[0]}x{size[1]} (WxH) but the set's first "
            f"image is {expected[0]}x{expected[1]}; resize the set to one size")


def _first_size(paths: list[Path]) -> tuple[int, int] | None:
    """The size in the header of the first readable image (None: none is readable)."""
    for path in paths:
        try:
            with Image.open(path) as im:
                return im.size
        except Exception:  # noqa: BLE001 - a corrupt file is reported by the decoding pass
            continue
    return None


def _decode_block(paths: list[Path], size: tuple[int, int] | None) -> list[np.ndarray | str]:
    return [_decode(p, size) for p in paths]


def decode_images(paths: list[Path], skip_corrupt: bool = False, desc: str = "decode"):
    """Decode ``paths`` -> (x uint8 (N,H,W,C), kept mask bool (len(paths),), skipped names)."""
    blocks = [paths[i : i + BLOCK] for i in range(0, len(paths), BLOCK)]
    size = _first_size(paths)
    cpus = _usable_cpus()
    jobs = min(cpus, len(blocks)) if cpus >= PARALLEL_MIN_CPUS else 1
    bar = tqdm(total=len(paths), desc=desc, unit="img", disable=len(paths) < 1000)
    arrays: list[np.ndarray | str] = []
    if jobs > 1 and len(paths) >= PARALLEL_MIN:
        tasks = (delayed(_decode_block)(b, size) for b in blocks)
        for out in Parallel(n_jobs=jobs, return_as="generator")(tasks):
            arrays.extend(out)
            bar.update(len(out))
    else:
        for b in blocks:
            arrays.extend(_decode_block(b, size))
            bar.update(len(b))
    bar.close()

    keep = np.array([not isinstance(a, str) for a in arrays], dtype=bool)
    bad = [(p, a) for p, a in zip(paths, arrays, strict=True) if isinstance(a, str)]
    if bad and not skip_corrupt:
        p, err = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise DataError(
            f"unreadable or corrupt image file {str(p)!r}: {err}{more}; "
            "set data.skip_corrupt: true to skip such files"
        )
    skipped = [str(p) for p, _ in bad]
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} corrupt image file(s): {', '.join(skipped[:10])}"
            + (" ..." if len(skipped) > 10 else ""),
            stacklevel=2,
        )
    good = [(p, a) for p, a in zip(paths, arrays, strict=True) if not isinstance(a, str)]
    return _stack(good), keep, skipped


def _stack(items: list[tuple[Path, np.ndarray]]) -> np.ndarray:
    if not items:
        return np.zeros((0, 1, 1, 1), np.uint8)
    first_path, first = items[0]
    size = first.shape[:2]
    for p, a in items:
        if a.shape[:2] != size:
            raise DataError(
                f"images of mixed sizes: {str(p)!r} is {a.shape[1]}x{a.shape[0]} (WxH) "
                f"but {str(first_path)!r} is {size[1]}x{size[0]}; resize the set to one size"
            )
    rgb = any(a.ndim == 3 for _, a in items)
    x = np.empty((len(items), *size, 3 if rgb else 1), np.uint8)
    for i, (_, a) in enumerate(items):
        x[i] = a[..., None] if a.ndim == 2 else a  # grey broadcasts to R=G=B, as PIL L->RGB
    return x


def load_labelled_files(split_files: dict[str, tuple[list[Path], list[int]]], cfg: dict, name: str):
    """Decode the splits in one go so size and channel rules hold across splits.

    ``split_files`` maps "train"/"test" -> (paths, int labels); ``cfg`` is the ``data`` section:
    ``limit_train``/``limit_test`` cut the file lists first (only kept images are decoded; a
    corrupt one skipped under ``skip_corrupt`` is not replaced). Returns ({split: (x, y)}, skipped).
    """
    split_files = {s: limited_files(s, *files, cfg) for s, files in split_files.items()}
    order = list(split_files)
    paths = [p for s in order for p in split_files[s][0]]
    labels = np.array([y for s in order for y in split_files[s][1]], dtype=np.int64)
    x, keep, skipped = decode_images(paths, bool(cfg.get("skip_corrupt")), desc=f"{name} images")
    owner = np.repeat(np.arange(len(order)), [len(split_files[s][0]) for s in order])
    owner, labels = owner[keep], labels[keep]
    return {s: (x[owner == i], labels[owner == i]) for i, s in enumerate(order)}, skipped
