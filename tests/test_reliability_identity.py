"""A training input's identity (pipeline.training.setup.input_identity, which resume files and the
teacher cache trust) follows the stores' contents: each array's dtype, shape and bytes, not only
the folder's summary files."""
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.store import SPLITS, content_digest, open_split, read_split, split_path, write_json, write_split
from pipeline.training.setup import input_identity

from test_reliability_train import RESUME, _enter, _params, killed_after_epoch, prepared, single_thread  # noqa: F401


def _topology(folder: Path, dtype: str) -> Path:
    """A data/topology folder of PIs stored as `dtype`, with the same stats.json whatever the dtype."""
    pis = np.random.default_rng(0).random((40, 2, 8, 8)).astype(dtype)
    for split in SPLITS:
        write_split(split_path(folder, split), {"pis": pis, "y": np.arange(40) % 4}, {"split": split}, 16)
    write_json(folder / "stats.json", {"mean": [0.5, 0.5], "std": [0.3, 0.3], "shape": [2, 8, 8]})
    return folder


def _swap_two_of_a_class(store: Path) -> None:
    """Two different training images of one class swapped: the same classes, counts, shapes and
    summary, the same shard sizes (the store is written again with its own shards)."""
    arrays, attrs = read_split(store)
    x, y = arrays["x"], arrays["y"]
    other = next(k for k in np.nonzero(y == y[0])[0] if not np.array_equal(x[k], x[0]))
    x[[0, other]] = x[[other, 0]]
    write_split(store, {"x": x, "y": y}, attrs, open_split(store)["x"].shards[0])


def test_a_dtype_change_changes_the_identity(tmp_path):
    folder = _topology(tmp_path / "topology", "float32")
    before, stats = input_identity(folder), (folder / "stats.json").read_text()
    assert content_digest(folder) == content_digest(_topology(tmp_path / "again", "float32"))
    shutil.rmtree(folder)
    _topology(folder, "float16")  # topology.dtype: float16, the same recipe and statistics
    assert (folder / "stats.json").read_text() == stats  # the summary cannot tell
    assert input_identity(folder) != before


def test_two_images_swapped_within_a_class_change_the_identity(tmp_path, prepared):
    folder = tmp_path / "prepared"
    shutil.copytree(prepared, folder)
    before = input_identity(folder)
    summary = (folder / "summary.json").read_text()
    _swap_two_of_a_class(split_path(folder, "train"))
    assert (folder / "summary.json").read_text() == summary  # the summary cannot tell
    assert input_identity(folder) != before


def test_a_resume_file_of_other_inputs_is_ignored(tmp_path, prepared, monkeypatch, capsys):
    from pipeline.runs import train_student

    params = _params(**{"train.epochs": 2})
    _enter(tmp_path / "ws", prepared, monkeypatch, **{"train.epochs": 2})
    with killed_after_epoch(1):
        train_student(params)
    assert RESUME.is_file()
    _swap_two_of_a_class(Path("data/prepared/train.zarr"))
    shutil.rmtree("data/models")
    shutil.rmtree("data/live")
    capsys.readouterr()
    train_student(params)
    out = capsys.readouterr().out
    assert "resuming" not in out
    lines = [line for line in out.splitlines() if "ignoring" in line]
    assert len(lines) == 1 and "starting at epoch 1" in lines[0] and "inputs" in lines[0], out
    assert not RESUME.exists()
