"""Sensor-window data sets: x float32 (N, L, C) windows, y int64.

``windows`` is the generic format for GENEActiv-style (or any pre-windowed) data:

* ``root/train.npz`` and ``root/test.npz``, each holding
  - ``x``: float array (N, L, C) (a 2-D (N, L) array is read as C = 1),
  - ``y``: (N,) int or str labels,
  - ``classes`` (optional): class names; with int ``y`` it is indexed by y, with str ``y``
    it fixes the class order. Without it classes are the sorted train labels.
  Saved with ``np.savez(path, x=x, y=y)``; str arrays must be fixed-width (dtype ``U``),
  object arrays are refused (they would need pickle).
* or, if no train.npz exists, one CSV per window: ``root/{train,test}/<label>/<id>.csv``,
  one column per channel, one row per time step, comma-separated, optional header line.
  Classes = sorted label folder names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.data.base import Dataset, Split, encode_labels, register, require_root
from pipeline.errors import DataError


@register("basicmotions", modality="signal")
def load_basicmotions(cfg: dict) -> Dataset:
    """BasicMotions shipped with aeon: 40 + 40 windows, 100 steps, 6 channels, 4 classes."""
    from aeon.datasets import load_basic_motions

    raw = {s: load_basic_motions(split=s) for s in ("train", "test")}
    classes, ytr, yte = encode_labels(
        np.asarray(raw["train"][1]), np.asarray(raw["test"][1]), "aeon BasicMotions"
    )
    # aeon gives (N, C, L); the pipeline wants (N, L, C)
    xs = {s: np.ascontiguousarray(np.transpose(raw[s][0], (0, 2, 1)), np.float32) for s in raw}
    splits = {"train": Split(xs["train"], ytr), "test": Split(xs["test"], yte)}
    return Dataset("basicmotions", "signal", classes, splits)


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    if not path.is_file():
        raise DataError(f"windows: missing file {str(path)!r} (expected root/{{train,test}}.npz)")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("x", "y") if k not in z.files]
            if missing:
                raise DataError(f"windows: {str(path)!r} lacks array(s) {missing}")
            x, y = z["x"], z["y"]
            classes = z["classes"] if "classes" in z.files else None
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - zip/format/pickle errors
        raise DataError(f"windows: cannot read {str(path)!r}: {e}") from e
    return x, y, classes


def _csv_window(path: Path) -> np.ndarray:
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline()
        try:
            [float(v) for v in first.split(",")]
            skip = 0
        except ValueError:
            skip = 1  # header line with channel names
        return np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64)
    except Exception as e:  # noqa: BLE001
        raise DataError(f"windows: cannot read CSV window {str(path)!r}: {e}") from e


def _read_csv_split(folder: Path):
    if not folder.is_dir():
        raise DataError(
            f"windows: expected root/train.npz + root/test.npz, or folders "
            f"root/{{train,test}}/<label>/<id>.csv; missing {str(folder)!r}"
        )
    xs, ys = [], []
    for label in sorted(d.name for d in folder.iterdir() if d.is_dir()):
        for f in sorted((folder / label).glob("*.csv")):
            xs.append(_csv_window(f))
            ys.append(label)
            if xs[-1].shape != xs[0].shape:
                raise DataError(
                    f"windows: {str(f)!r} has shape {xs[-1].shape}, others {xs[0].shape}"
                )
    if not xs:
        raise DataError(f"windows: empty split, no <label>/*.csv files under {str(folder)!r}")
    return np.stack(xs), np.array(ys), None


def _as_windows(x: np.ndarray, path: str) -> np.ndarray:
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3 or not np.issubdtype(x.dtype, np.number):
        raise DataError(f"windows: x in {path!r} must be numeric (N,L,C), got {x.dtype} {x.shape}")
    if not np.isfinite(x).all():
        raise DataError(f"windows: x in {path!r} has NaN or inf values")
    return np.ascontiguousarray(x, dtype=np.float32)


@register("windows", modality="signal")
def load_windows(cfg: dict) -> Dataset:
    root = require_root(cfg, "windows")
    use_npz = (root / "train.npz").exists()
    raw = {}
    for s in ("train", "test"):
        where = root / (f"{s}.npz" if use_npz else s)
        x, y, classes = _read_npz(where) if use_npz else _read_csv_split(where)
        if len(x) == 0 or len(x) != len(y):
            raise DataError(f"windows: {str(where)!r} is empty or x and y differ in length")
        raw[s] = (_as_windows(x, str(where)), np.asarray(y).reshape(-1), classes)
    (xtr, ytr, classes), (xte, yte, _) = raw["train"], raw["test"]
    if xtr.shape[1:] != xte.shape[1:]:
        raise DataError(
            f"windows: train windows are {xtr.shape[1:]}, test {xte.shape[1:]} in {str(root)!r}"
        )

    if classes is not None and np.issubdtype(ytr.dtype, np.integer):
        names = [str(c) for c in classes]
        classes, ytr, yte = encode_labels(ytr, yte, str(root), list(range(len(names))))
        classes = names
    else:
        given = None if classes is None else [str(c) for c in classes]
        if given is None and np.issubdtype(ytr.dtype, np.integer):
            given = sorted(set(ytr.tolist()))  # numeric order, not string order
        classes, ytr, yte = encode_labels(ytr, yte, str(root), given)
    splits = {"train": Split(xtr, ytr), "test": Split(xte, yte)}
    return Dataset("windows", "signal", classes, splits)
