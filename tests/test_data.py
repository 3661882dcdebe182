"""Registry, limit_*, digits, and the sensor loaders (basicmotions, pamap2, windows)."""

import numpy as np
import pytest

from pipeline.data import DATASETS, MODALITY, Split, limit_split, load_dataset, modality_of
from pipeline.data.pamap2 import CHANNELS
from pipeline.errors import DataError, ParamsError

DIGITS = {"name": "digits", "root": None, "split_seed": 0, "test_fraction": 0.2}


def test_registry_and_modality():
    expected = {"digits", "cifar10", "imagefolder", "cinic10", "tinyimagenet"}
    assert expected | {"basicmotions", "pamap2", "windows"} == set(DATASETS)
    assert all(MODALITY[n] == "image" for n in expected)
    assert modality_of("pamap2") == "signal"
    with pytest.raises(DataError, match=r"unknown data.name 'mnist'.*cifar10.*windows"):
        load_dataset({"name": "mnist"})
    with pytest.raises(DataError, match="known data sets"):
        modality_of("mnist")


# ---------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DIGITS)


def test_digits_shape_and_stratified_split(digits):
    tr, te = digits.splits["train"], digits.splits["test"]
    assert len(tr) + len(te) == 1797 and len(te) == 360
    assert tr.x.shape[1:] == (32, 32, 1) and tr.x.dtype == np.uint8 and tr.y.dtype == np.int64
    assert digits.classes == [str(i) for i in range(10)] and digits.modality == "image"
    assert tr.x.max() == 255 and tr.x.min() == 0
    share = np.bincount(te.y, minlength=10) / np.bincount(np.r_[tr.y, te.y], minlength=10)
    assert np.allclose(share, 0.2, atol=0.02)


def test_digits_size_sets_the_side_and_keeps_the_split(digits):
    """data.digits_size (params.yaml: 16) resizes the 8x8 originals; the split does not move."""
    small = load_dataset({**DIGITS, "digits_size": 16})
    tr, te = small.splits["train"], small.splits["test"]
    assert tr.x.shape[1:] == (16, 16, 1) and te.x.shape[1:] == (16, 16, 1)
    np.testing.assert_array_equal(te.y, digits.splits["test"].y)
    assert tr.x.max() == 255 and tr.x.min() == 0
    with pytest.raises(ParamsError, match="data.digits_size"):
        load_dataset({**DIGITS, "digits_size": 4})


def test_digits_deterministic_and_seeded(digits):
    again = load_dataset(DIGITS)
    np.testing.assert_array_equal(again.splits["train"].x, digits.splits["train"].x)
    np.testing.assert_array_equal(again.splits["test"].y, digits.splits["test"].y)
    other = load_dataset({**DIGITS, "split_seed": 1})
    assert not np.array_equal(other.splits["test"].x, digits.splits["test"].x)


# ---------------------------------------------------------------- limit_*


def test_limit_stratified_deterministic(digits):
    cfg = {**DIGITS, "limit_train": 100, "limit_test": 30}
    a, b = load_dataset(cfg), load_dataset(cfg)
    assert len(a.splits["train"]) == 100 and len(a.splits["test"]) == 30
    np.testing.assert_array_equal(a.splits["train"].x, b.splits["train"].x)
    assert np.bincount(a.splits["test"].y).tolist() == [3] * 10
    counts = np.bincount(a.splits["train"].y, minlength=10)
    assert counts.sum() == 100 and counts.min() >= 9 and counts.max() <= 11
    c = load_dataset({**cfg, "split_seed": 5})
    assert not np.array_equal(c.splits["test"].x, a.splits["test"].x)


def test_limit_split_keeps_proportions_and_order():
    y = np.array([0] * 60 + [1] * 30 + [2] * 10)
    s = Split(np.arange(100, dtype=np.float32)[:, None, None], y)
    out = limit_split(s, 10, seed=3)
    assert np.bincount(out.y).tolist() == [6, 3, 1]
    assert (np.diff(out.x[:, 0, 0]) > 0).all()  # original order kept
    assert limit_split(s, 500, seed=3) is s
    with pytest.raises(ParamsError, match="limit_train"):
        limit_split(s, 0, seed=0, key="limit_train")


# ---------------------------------------------------------------- basicmotions


def test_basicmotions():
    from aeon.datasets import load_basic_motions

    ds = load_dataset({"name": "basicmotions"})
    tr, te = ds.splits["train"], ds.splits["test"]
    assert ds.modality == "signal" and ds.classes == ["badminton", "running", "standing", "walking"]
    assert tr.x.shape == (40, 100, 6) and te.x.shape == (40, 100, 6) and tr.x.dtype == np.float32
    raw, labels = load_basic_motions(split="train")
    np.testing.assert_allclose(tr.x[3, 17, 4], raw[3, 4, 17], rtol=1e-6)
    assert ds.classes[tr.y[3]] == labels[3]


# ---------------------------------------------------------------- pamap2


def write_subject(path, segments, hr, value, hr_outlier=None):
    """segments: [(activity, rows)]. Kept column c holds `value(c)`; HR is measured every
    10th row (NaN otherwise, NaN in the first rows too), orientation columns are NaN."""
    acts = np.concatenate([[a] * n for a, n in segments]).astype(float)
    t = len(acts)
    data = np.full((t, 54), np.nan)
    data[:, 0] = np.arange(t) / 100
    data[:, 1] = acts
    for c in CHANNELS[1:]:
        data[:, c] = value(c)
    data[3::10, 2] = hr
    data[7, 5] = np.nan  # a dropped packet in an IMU column: forward-filled
    if hr_outlier is not None:
        data[np.flatnonzero(acts == 0)[0], 2] = hr_outlier  # in a dropped (activity 0) row
    lines = [" ".join("NaN" if np.isnan(v) else f"{v:g}" for v in row) for row in data]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def pamap(tmp_path):
    proto = tmp_path / "Protocol"
    # 101: 0 | lying 330 | 0 | walking 300 | watching TV (9, not protocol)
    # kept rows 630 -> 210 after x3 (110 lying, 100 walking); window starts 0,22,..,110:
    # s=0 (0 lying, 99 lying) kept; s=22..88 end in walking: dropped; s=110 walking kept.
    write_subject(proto / "subject101.dat", [(0, 30), (1, 330), (0, 30), (4, 300), (9, 9)],
                  hr=60, value=lambda c: 0)
    # 102: rope jumping 600 rows -> 200 -> starts 0,22,44,66,88: 5 windows
    write_subject(proto / "subject102.dat", [(0, 15), (24, 600)], hr=120, value=lambda c: c,
                  hr_outlier=250)
    # 103: sitting 200 | standing 200 -> 134 rows, starts 0,22: both cross the change: none
    write_subject(proto / "subject103.dat", [(2, 200), (3, 200)], hr=90, value=lambda c: 100)
    return tmp_path


def test_pamap2_windows_by_hand(pamap):
    ds = load_dataset({"name": "pamap2", "root": str(pamap), "pamap2_test_subject": 101})
    tr, te = ds.splits["train"], ds.splits["test"]
    assert ds.classes[:3] == ["lying", "sitting", "standing"] and len(ds.classes) == 12
    assert ds.classes[7] == "ascending stairs" and ds.classes[11] == "rope jumping"
    assert te.x.shape == (2, 100, 40) and te.x.dtype == np.float32
    assert te.y.tolist() == [0, 3]  # lying, walking
    assert tr.x.shape == (5, 100, 40) and tr.y.tolist() == [11] * 5
    assert not np.isnan(tr.x).any() and not np.isnan(te.x).any()
    # min-max over all subjects: HR 60..120 (250 sits in a dropped row), IMU 0..100
    assert np.allclose(te.x[..., 0], 0) and np.allclose(tr.x[..., 0], 1)
    np.testing.assert_allclose(tr.x[0, 0, 1:], np.array(CHANNELS[1:]) / 100, rtol=1e-6)


def test_pamap2_other_test_subject_and_protocol_root(pamap):
    ds = load_dataset(
        {"name": "pamap2", "root": str(pamap / "Protocol"), "pamap2_test_subject": 102}
    )
    assert len(ds.splits["test"]) == 5 and ds.splits["train"].y.tolist() == [0, 3]


def test_pamap2_errors(pamap, tmp_path):
    with pytest.raises(DataError, match="subject105.dat"):
        load_dataset({"name": "pamap2", "root": str(pamap), "pamap2_test_subject": 105})
    with pytest.raises(DataError, match="split 'test' has no windows"):
        load_dataset({"name": "pamap2", "root": str(pamap), "pamap2_test_subject": 103})
    (pamap / "Protocol" / "subject104.dat").write_text("1 2 3\n")
    with pytest.raises(DataError, match=r"subject104.dat.*3 columns, expected 54"):
        load_dataset({"name": "pamap2", "root": str(pamap), "pamap2_test_subject": 101})
    with pytest.raises(DataError, match="does_not_exist"):
        load_dataset({"name": "pamap2", "root": str(tmp_path / "does_not_exist")})


def test_pamap2_empty_root_layout(tmp_path):
    with pytest.raises(DataError, match=r"expected root/Protocol/subject101.dat"):
        load_dataset({"name": "pamap2", "root": str(tmp_path)})


# ---------------------------------------------------------------- windows


def test_windows_npz_str_labels(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 50, 3))
    np.savez(tmp_path / "train.npz", x=x, y=np.array(["walk", "sit", "walk", "run", "sit", "run"]))
    np.savez(tmp_path / "test.npz", x=x[:2], y=np.array(["sit", "walk"]))
    ds = load_dataset({"name": "windows", "root": str(tmp_path)})
    assert ds.classes == ["run", "sit", "walk"]
    assert ds.splits["train"].y.tolist() == [2, 1, 2, 0, 1, 0]
    assert ds.splits["train"].x.dtype == np.float32 and ds.splits["test"].x.shape == (2, 50, 3)
    np.testing.assert_allclose(ds.splits["train"].x[4, 7, 2], x[4, 7, 2], rtol=1e-6)


def test_windows_npz_int_labels_with_classes(tmp_path):
    x = np.zeros((4, 10, 1))
    classes = np.array(["lying", "sitting", "standing"])
    np.savez(tmp_path / "train.npz", x=x, y=np.array([2, 0, 2, 1]), classes=classes)
    np.savez(tmp_path / "test.npz", x=x[:1, :, 0], y=np.array([0]))  # (N, L) -> C = 1
    ds = load_dataset({"name": "windows", "root": str(tmp_path)})
    assert ds.classes == ["lying", "sitting", "standing"]
    assert ds.splits["train"].y.tolist() == [2, 0, 2, 1]
    assert ds.splits["test"].x.shape == (1, 10, 1)


def test_windows_errors(tmp_path):
    x = np.zeros((2, 10, 1))
    np.savez(tmp_path / "train.npz", x=x, y=np.array([10, 30]))
    with pytest.raises(DataError, match="test.npz"):
        load_dataset({"name": "windows", "root": str(tmp_path)})
    np.savez(tmp_path / "test.npz", x=x, y=np.array([10, 20]))
    with pytest.raises(DataError, match=r"absent from train: \[20\]"):
        load_dataset({"name": "windows", "root": str(tmp_path)})
    np.savez(tmp_path / "test.npz", x=x[:0], y=np.array([], dtype=int))
    with pytest.raises(DataError, match="test.npz.*empty"):
        load_dataset({"name": "windows", "root": str(tmp_path)})


def test_windows_csv_layout(tmp_path):
    for split, label, i in [("train", "b", 0), ("train", "a", 1), ("test", "b", 2)]:
        f = tmp_path / split / label / f"{i}.csv"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("ax,ay\n" + "\n".join(f"{i}.5,{t}" for t in range(8)) + "\n")
    ds = load_dataset({"name": "windows", "root": str(tmp_path)})
    tr = ds.splits["train"]
    assert ds.classes == ["a", "b"] and tr.x.shape == (2, 8, 2) and tr.y.tolist() == [0, 1]
    assert tr.x[0, 3, 0] == 1.5 and tr.x[1, 5, 1] == 5
