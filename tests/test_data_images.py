"""Image loaders against tiny files written in each exact on-disk format."""

import pickle

import numpy as np
import pytest
from PIL import Image

from pipeline.data import load_dataset
from pipeline.errors import DataError


def save(path, arr, mode=None, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr, np.uint8), mode).save(path, fmt)
    return path


def rgb(seed, h=8, w=8):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ---------------------------------------------------------------- cifar10


def write_cifar(folder, n_train=3, n_test=2):
    """Python-pickled batches as torchvision's cifar-10-batches-py, bytes keys."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [b"airplane", b"automobile", b"bird"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names, b"num_cases_per_batch": n_train}, f, protocol=2)
    batches = {}
    for i, fname in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        n = n_test if fname == "test_batch" else n_train
        chw = np.random.default_rng(i).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        labels = [(i + j) % 3 for j in range(n)]
        d = {b"batch_label": fname.encode(), b"labels": labels, b"data": chw.reshape(n, 3072)}
        with open(folder / fname, "wb") as f:
            pickle.dump(d, f, protocol=2)
        batches[fname] = (chw, labels)
    return batches


def test_cifar10_pickles(tmp_path):
    batches = write_cifar(tmp_path / "cifar-10-batches-py")
    ds = load_dataset({"name": "cifar10", "root": str(tmp_path)})
    tr, te = ds.splits["train"], ds.splits["test"]
    assert ds.classes == ["airplane", "automobile", "bird"] and ds.modality == "image"
    assert tr.x.shape == (15, 32, 32, 3) and te.x.shape == (2, 32, 32, 3)
    assert tr.x.dtype == np.uint8 and tr.y.dtype == np.int64
    chw, labels = batches["data_batch_2"]
    # row-major CHW bytes: data[i, c*1024 + r*32 + col] -> x[i, r, col, c]
    assert tr.x[3 + 1, 5, 7, 2] == chw[1, 2, 5, 7]
    np.testing.assert_array_equal(tr.x[3:6], chw.transpose(0, 2, 3, 1))
    assert tr.y[3:6].tolist() == labels
    assert te.y.tolist() == batches["test_batch"][1]
    # batches pickled by numpy 1.x name numpy.core.multiarray: must load too
    old = tmp_path / "cifar-10-batches-py" / "test_batch"
    old.write_bytes(old.read_bytes().replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    # root may also be the batches folder itself
    direct = load_dataset({"name": "cifar10", "root": str(tmp_path / "cifar-10-batches-py")})
    np.testing.assert_array_equal(direct.splits["train"].x, tr.x)


def test_cifar10_missing_batch_named(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DataError, match="data_batch_4"):
        load_dataset({"name": "cifar10", "root": str(tmp_path)})


def test_cifar10_refuses_code_in_pickle(tmp_path):
    write_cifar(tmp_path)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": print}, f)  # a global other than numpy's array machinery
    with pytest.raises(DataError, match="test_batch"):
        load_dataset({"name": "cifar10", "root": str(tmp_path)})


# ---------------------------------------------------------------- imagefolder


def write_folder(root, spec):
    """spec: {split: {class: [array, ...]}} -> PNG files; returns {path: array}."""
    out = {}
    for split, classes in spec.items():
        for c, arrays in classes.items():
            for i, a in enumerate(arrays):
                out[save(root / split / c / f"{i:03d}.png", a)] = a
    return out


def test_imagefolder_roundtrip_and_class_order(tmp_path):
    a, b, c = rgb(1), rgb(2), rgb(3)
    write_folder(tmp_path, {"train": {"zebra": [a, b], "ant": [c]}, "test": {"zebra": [c]}})
    save(tmp_path / "train" / "ant" / "x.JPEG", rgb(4))  # extension case-insensitive
    save(tmp_path / "train" / "ant" / "y.jpg", rgb(5))
    (tmp_path / "train" / "ant" / "notes.txt").write_text("ignored")
    ds = load_dataset({"name": "imagefolder", "root": str(tmp_path)})
    tr = ds.splits["train"]
    assert ds.classes == ["ant", "zebra"]
    assert tr.x.shape == (5, 8, 8, 3) and tr.y.tolist() == [0, 0, 0, 1, 1]
    np.testing.assert_array_equal(tr.x[0], c)  # 000.png sorts before x.JPEG, y.jpg
    np.testing.assert_array_equal(tr.x[3], a)  # PNG is lossless
    assert tr.x[4, 2, 3, 1] == b[2, 3, 1]
    assert ds.splits["test"].y.tolist() == [1] and ds.skipped == []


def test_imagefolder_grey_stays_one_channel(tmp_path):
    g = np.arange(64, dtype=np.uint8).reshape(8, 8)
    write_folder(tmp_path, {"train": {"a": [g, g]}, "test": {"a": [g]}})
    ds = load_dataset({"name": "imagefolder", "root": str(tmp_path)})
    assert ds.splits["train"].x.shape == (2, 8, 8, 1)
    assert ds.splits["train"].x[0, 1, 2, 0] == g[1, 2]


def test_imagefolder_mixed_grey_rgb_palette_rgba(tmp_path):
    g = np.full((8, 8), 77, np.uint8)
    write_folder(tmp_path, {"train": {"a": [g]}, "test": {"a": [rgb(1)]}})
    rgba = np.dstack([rgb(2), np.full((8, 8), 128, np.uint8)])
    save(tmp_path / "train" / "a" / "rgba.png", rgba, "RGBA")
    Image.fromarray(rgb(3)).convert("P").save(tmp_path / "train" / "a" / "pal.png")
    ds = load_dataset({"name": "imagefolder", "root": str(tmp_path)})
    x = ds.splits["train"].x  # files: 000.png (grey), pal.png, rgba.png
    assert x.shape == (3, 8, 8, 3) and ds.splits["test"].x.shape == (1, 8, 8, 3)
    assert (x[0] == 77).all()  # grey replicated to R=G=B
    np.testing.assert_array_equal(x[2], rgb(2))  # alpha dropped


def test_imagefolder_test_class_absent_from_train(tmp_path):
    write_folder(tmp_path, {"train": {"a": [rgb(1)]}, "test": {"a": [rgb(1)], "b": [rgb(2)]}})
    with pytest.raises(DataError, match=r"absent from train.*b|b.*absent"):
        load_dataset({"name": "imagefolder", "root": str(tmp_path)})


def test_imagefolder_mixed_sizes_named(tmp_path):
    write_folder(tmp_path, {"train": {"a": [rgb(1)]}, "test": {"a": [rgb(2)]}})
    save(tmp_path / "train" / "a" / "big.png", rgb(3, h=8, w=10))
    with pytest.raises(DataError, match=r"big\.png.*10x8.*8x8"):
        load_dataset({"name": "imagefolder", "root": str(tmp_path)})


def test_imagefolder_corrupt_fails_or_is_skipped(tmp_path):
    write_folder(tmp_path, {"train": {"a": [rgb(1), rgb(2)]}, "test": {"a": [rgb(3)]}})
    bad = tmp_path / "train" / "a" / "broken.png"
    bad.write_bytes(b"not an image at all")
    cfg = {"name": "imagefolder", "root": str(tmp_path)}
    with pytest.raises(DataError, match="broken.png"):
        load_dataset(cfg)
    with pytest.warns(UserWarning, match=r"skipped 1 corrupt.*broken\.png"):
        ds = load_dataset({**cfg, "skip_corrupt": True})
    assert ds.skipped == [str(bad)]
    assert len(ds.splits["train"]) == 2 and ds.splits["train"].y.tolist() == [0, 0]


def test_imagefolder_truncated_jpeg_named(tmp_path):
    write_folder(tmp_path, {"train": {"a": [rgb(1)]}, "test": {"a": [rgb(3)]}})
    jpg = save(tmp_path / "train" / "a" / "cut.jpg", rgb(4, 32, 32))
    jpg.write_bytes(jpg.read_bytes()[:200])
    with pytest.raises(DataError, match="cut.jpg"):
        load_dataset({"name": "imagefolder", "root": str(tmp_path)})


@pytest.mark.parametrize(
    "setup, match",
    [
        (lambda p: None, "data.root is null"),
        (lambda p: str(p / "nowhere"), "nowhere"),
        (lambda p: (p / "train").mkdir() or str(p), r"root/\{train,test\}/<class>/<image>"),
    ],
)
def test_imagefolder_root_and_layout_errors(tmp_path, setup, match):
    with pytest.raises(DataError, match=match):
        load_dataset({"name": "imagefolder", "root": setup(tmp_path)})


def test_imagefolder_empty_split_named(tmp_path):
    write_folder(tmp_path, {"train": {"a": [rgb(1)]}})
    (tmp_path / "test" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match=r"empty split.*test"):
        load_dataset({"name": "imagefolder", "root": str(tmp_path)})


def test_imagefolder_empty_class_folder_named(tmp_path):
    write_folder(tmp_path, {"train": {"a": [rgb(1)], "b": [rgb(2)]}, "test": {"a": [rgb(1)]}})
    (tmp_path / "test" / "b").mkdir()
    with pytest.raises(DataError, match=r"test/b'?: empty class folder"):
        load_dataset({"name": "imagefolder", "root": str(tmp_path)})


# ---------------------------------------------------------------- cinic10


def test_cinic10_valid_into_train_and_grey_png(tmp_path):
    g = np.full((8, 8), 9, np.uint8)
    spec = {
        "train": {"cat": [rgb(1)], "dog": [g]},
        "valid": {"cat": [rgb(2), rgb(3)]},
        "test": {"dog": [rgb(4)]},
    }
    write_folder(tmp_path, spec)
    cfg = {"name": "cinic10", "root": str(tmp_path)}
    ds = load_dataset(cfg)
    assert ds.classes == ["cat", "dog"] and ds.splits["train"].x.shape == (2, 8, 8, 3)
    assert (ds.splits["train"].x[1] == 9).all()
    both = load_dataset({**cfg, "cinic10_valid_into_train": True})
    assert both.splits["train"].y.tolist() == [0, 1, 0, 0]
    np.testing.assert_array_equal(both.splits["train"].x[3], rgb(3))


def test_cinic10_missing_valid_named(tmp_path):
    write_folder(tmp_path, {"train": {"a": [rgb(1)]}, "test": {"a": [rgb(1)]}})
    with pytest.raises(DataError, match="missing: valid"):
        load_dataset({"name": "cinic10", "root": str(tmp_path), "cinic10_valid_into_train": True})


# ---------------------------------------------------------------- tinyimagenet


def write_tiny(parent):
    root = parent / "tiny-imagenet-200"
    wnids = ["n02", "n01"]  # unsorted on disk; classes follow sorted wnids
    root.mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (root / "words.txt").write_text(
        "n00\tentity\nn01\tgoldfish, Carassius auratus\nn02\tEuropean fire salamander\n"
        "n03\tgoldfish\n"  # same first name as n01, but n03 is not in wnids.txt
    )
    imgs = {}
    for k, w in enumerate(sorted(wnids)):
        for i in range(2):
            imgs[(w, i)] = np.full((64, 64, 3), (40 + 100 * k, 20 + 60 * i, 90), np.uint8)
            save(root / "train" / w / "images" / f"{w}_{i}.JPEG", imgs[(w, i)], fmt="JPEG")
        (root / "train" / w / f"{w}_boxes.txt").write_text("")
    grey = np.full((64, 64), 200, np.uint8)
    save(root / "val" / "images" / "val_0.JPEG", grey, fmt="JPEG")  # grayscale JPEG
    save(root / "val" / "images" / "val_1.JPEG", rgb(99, 64, 64), fmt="JPEG")
    (root / "val" / "val_annotations.txt").write_text(
        "val_0.JPEG\tn02\t0\t0\t10\t10\nval_1.JPEG\tn01\t1\t2\t30\t40\n"
    )
    return root, imgs


@pytest.mark.parametrize("use_parent", [True, False])
def test_tinyimagenet(tmp_path, use_parent):
    root, imgs = write_tiny(tmp_path)
    ds = load_dataset({"name": "tinyimagenet", "root": str(tmp_path if use_parent else root)})
    tr, te = ds.splits["train"], ds.splits["test"]
    assert ds.classes == ["goldfish", "European fire salamander"]
    assert tr.x.shape == (4, 64, 64, 3) and tr.y.tolist() == [0, 0, 1, 1]
    assert te.x.shape == (2, 64, 64, 3) and te.y.tolist() == [1, 0]
    assert abs(int(te.x[0, 5, 5, 1]) - 200) <= 2  # grey JPEG -> RGB, JPEG is lossy
    assert np.abs(tr.x[2].astype(int) - imgs[("n02", 0)]).max() <= 3  # flat colour survives JPEG


def test_tinyimagenet_val_class_absent(tmp_path):
    root, _ = write_tiny(tmp_path)
    with open(root / "val" / "val_annotations.txt", "a") as f:
        f.write("val_1.JPEG\tn99\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match=r"val_annotations.txt.*n99.*absent from train"):
        load_dataset({"name": "tinyimagenet", "root": str(root)})


def test_tinyimagenet_layout_error(tmp_path):
    with pytest.raises(DataError, match="wnids.txt"):
        load_dataset({"name": "tinyimagenet", "root": str(tmp_path)})


def test_parallel_decode_matches_serial(tmp_path, monkeypatch):
    import pipeline.data.imagefiles as F

    write_folder(tmp_path, {"train": {"a": [rgb(i) for i in range(5)]}, "test": {"a": [rgb(9)]}})
    cfg = {"name": "imagefolder", "root": str(tmp_path)}
    serial = load_dataset(cfg)
    for key, value in (("PARALLEL_MIN", 1), ("PARALLEL_MIN_CPUS", 1), ("BLOCK", 2)):
        monkeypatch.setattr(F, key, value)
    monkeypatch.setattr(F, "_usable_cpus", lambda: 2)
    par = load_dataset(cfg)
    np.testing.assert_array_equal(par.splits["train"].x, serial.splits["train"].x)
