"""PAMAP2 (UCI "PAMAP2 Physical Activity Monitoring"), protocol recordings.

Input: ``root/Protocol/subject10N.dat`` (root may also be the Protocol folder itself),
space-separated, 54 columns: timestamp, activityID, heart rate, then 17 columns for each
IMU (hand, chest, ankle): temperature, acc +-16 g (3), acc +-6 g (3), gyro (3), mag (3),
orientation (4, invalid).

Preprocessing (TPKD; docs/datasets.md), per subject unless said otherwise:
 1. keep 40 channels: heart rate + 13 per IMU (orientation dropped);
 2. forward-fill NaNs of every channel (heart rate is sampled at ~9 Hz, other NaNs are
    dropped packets, so the last valid reading is the best estimate), back-fill leading ones;
 3. drop rows whose activity is not one of the 12 protocol activities (0 = transient too),
    as the authors do before downsampling;
 4. min-max normalise each channel to [0, 1] with min/max over the kept rows of *all loaded
    subjects* (one scale for train and test; a constant channel becomes 0, a channel with no
    valid value in a subject becomes 0);
 5. downsample x3 (every third row, 100 Hz -> ~33 Hz);
 6. windows of 100 rows, step 22, starting at row 0 of each subject (never crossing subjects),
    kept only when the first and last rows have the same activity, which is the label.
    (The authors' loop starts at row 22 and skips the last window; we do not copy that quirk.)
Split: leave-one-subject-out, test = ``pamap2_test_subject``, train = every other subject found.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from pipeline.data.base import Dataset, Split, register, require_root
from pipeline.errors import DataError, ParamsError

ACTIVITIES = {
    1: "lying",
    2: "sitting",
    3: "standing",
    4: "walking",
    5: "running",
    6: "cycling",
    7: "Nordic walking",
    12: "ascending stairs",
    13: "descending stairs",
    16: "vacuum cleaning",
    17: "ironing",
    24: "rope jumping",
}
N_COLUMNS = 54
HEART_RATE = 2
IMU_STARTS = (3, 20, 37)  # hand, chest, ankle; 17 columns each, last 4 = orientation
CHANNELS = [HEART_RATE] + [s + k for s in IMU_STARTS for k in range(13)]  # 40 channels
DOWNSAMPLE, WINDOW, STEP = 3, 100, 22
SUBJECT_FILE = re.compile(r"subject(1\d\d)\.dat$")


def _protocol_folder(root: Path) -> Path:
    for cand in (root / "Protocol", root):
        if any(SUBJECT_FILE.match(p.name) for p in cand.glob("subject*.dat")):
            return cand
    raise DataError(
        f"pamap2: no subject10N.dat files in {str(root / 'Protocol')!r} or {str(root)!r}; "
        "expected root/Protocol/subject101.dat ... subject109.dat"
    )


def read_subject(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One .dat file -> (x float64 (T,40) NaN-filled, activity int64 (T,)), protocol rows only."""
    import pandas as pd  # pandas' C parser reads the ~1 GB of text ~10x faster than loadtxt

    try:
        df = pd.read_csv(path, sep=r"\s+", header=None, dtype=np.float64)
    except Exception as e:  # noqa: BLE001
        raise DataError(f"pamap2: cannot parse {str(path)!r}: {e}") from e
    if df.shape[1] != N_COLUMNS:
        raise DataError(f"pamap2: {str(path)!r} has {df.shape[1]} columns, expected {N_COLUMNS}")
    activity = df[1].to_numpy()
    if np.isnan(activity).any():
        raise DataError(f"pamap2: {str(path)!r} has missing activityID values")
    x = df[CHANNELS].ffill().bfill().to_numpy()
    keep = np.isin(activity, list(ACTIVITIES))
    return x[keep], activity[keep].astype(np.int64)


def windows(x: np.ndarray, activity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Downsample one subject's normalised stream and cut labelled windows."""
    x, activity = x[::DOWNSAMPLE], activity[::DOWNSAMPLE]
    if len(x) < WINDOW:
        return np.zeros((0, WINDOW, x.shape[1]), np.float32), np.zeros(0, np.int64)
    starts = np.arange(0, len(x) - WINDOW + 1, STEP)
    starts = starts[activity[starts] == activity[starts + WINDOW - 1]]
    view = np.lib.stride_tricks.sliding_window_view(x, WINDOW, axis=0)  # (T-W+1, C, W)
    xw = view[starts].transpose(0, 2, 1).astype(np.float32)
    ids = list(ACTIVITIES)
    y = np.array([ids.index(a) for a in activity[starts]], dtype=np.int64)
    return xw, y


@register("pamap2", modality="signal")
def load_pamap2(cfg: dict) -> Dataset:
    folder = _protocol_folder(require_root(cfg, "pamap2"))
    test_subject = int(cfg.get("pamap2_test_subject") or 101)
    if not 101 <= test_subject <= 109:
        raise ParamsError(f"data.pamap2_test_subject must be 101..109, got {test_subject}")
    test_file = folder / f"subject{test_subject}.dat"
    if not test_file.is_file():
        raise DataError(f"pamap2: test subject file {str(test_file)!r} is missing")
    files = sorted(p for p in folder.iterdir() if SUBJECT_FILE.match(p.name))
    if len(files) < 2:
        raise DataError(f"pamap2: no training subjects besides {test_file.name} in {str(folder)!r}")

    subjects = {p: read_subject(p) for p in files}
    rows = np.concatenate([x for x, _ in subjects.values()])
    if len(rows) == 0:
        raise DataError(f"pamap2: no rows of the 12 protocol activities in {str(folder)!r}")
    with warnings.catch_warnings():  # a channel without any valid value is handled below
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanmin(rows, axis=0), np.nanmax(rows, axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)

    parts = {"train": ([], []), "test": ([], [])}
    for p, (x, a) in subjects.items():
        xn = np.nan_to_num((x - lo) / span, nan=0.0)
        xw, y = windows(xn, a)
        split = "test" if p == test_file else "train"
        parts[split][0].append(xw)
        parts[split][1].append(y)
    splits = {s: Split(np.concatenate(xs), np.concatenate(ys)) for s, (xs, ys) in parts.items()}
    for s, sp in splits.items():
        if len(sp) == 0:
            raise DataError(f"pamap2: split {s!r} has no windows (files in {str(folder)!r})")
    return Dataset("pamap2", "signal", list(ACTIVITIES.values()), splits)
