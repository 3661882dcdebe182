"""One-line messages that say what happened: a data.root that is a file, and a permission error
told as reading (an input you may not read) or as writing (an output folder you may not write)."""
import errno
import os
import stat
from pathlib import Path

import pytest
import yaml

import stages.prepare
from conftest import tiny_params
import pipeline.data.base as base
from pipeline.errors import DataError
import stages._cli as cli
from stages._cli import run


def _denied(path: Path) -> PermissionError:
    return PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))


@pytest.fixture
def as_a_user(monkeypatch):
    """os.access by the mode bits, as for a user who is not root (root may read anything)."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        def access(path, mode):
            try:
                bits = stat.S_IMODE(os.stat(path).st_mode)
            except OSError:
                return False
            wanted = {os.R_OK: stat.S_IRUSR, os.W_OK: stat.S_IWUSR, os.X_OK: stat.S_IXUSR}
            return all(bits & bit for flag, bit in wanted.items() if mode & flag)
        monkeypatch.setattr(os, "access", access)


def test_a_data_root_that_is_a_file_says_so(tmp_path):
    archive = tmp_path / "cifar10.tar.gz"
    archive.write_bytes(b"not a folder")
    with pytest.raises(DataError) as error:
        base.require_root({"root": str(archive)}, "cifar10")
    assert str(error.value) == (f"data.root {str(archive)!r} is a file, not a folder; "
                                "name the folder that holds the 'cifar10' data")
    with pytest.raises(DataError, match="does not exist or is not a folder"):
        base.require_root({"root": str(tmp_path / "missing")}, "cifar10")


def test_a_file_under_data_root_you_may_not_read_is_told_as_reading(tmp_path, as_a_user):
    image = tmp_path / "root" / "cat" / "0001.png"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"png")
    image.chmod(0)
    try:
        line = cli.describe_os_error(_denied(image))
    finally:
        image.chmod(0o644)
    assert line == (f"{image}: permission denied reading it; the data set's files under data.root must be "
                    "readable by you (chmod -R u+rX)")


def test_a_folder_you_may_not_enter_is_told_as_reading(tmp_path, as_a_user):
    folder = tmp_path / "root" / "cat"
    folder.mkdir(parents=True)
    (folder / "0001.png").write_bytes(b"png")
    folder.chmod(0o600)
    try:
        line = cli.describe_os_error(_denied(folder / "0001.png"))
    finally:
        folder.chmod(0o755)
    assert "permission denied reading it; the data set's files under data.root must be readable" in line


def test_an_output_you_may_not_write_is_told_as_writing(tmp_path, monkeypatch, as_a_user):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    line = cli.describe_os_error(_denied(tmp_path / "data" / "prepared" / "train.zarr"))
    assert line == ("data/prepared/train.zarr: permission denied writing it; the stage writes under data/, "
                    "which must be writable by you")


def test_the_prepare_stage_says_which_file_it_could_not_read(tmp_path, monkeypatch, capsys, as_a_user):
    root = tmp_path / "images"
    for split in ("train", "test"):
        (root / split / "cat").mkdir(parents=True)
    (tmp_path / "ws").mkdir()
    monkeypatch.chdir(tmp_path / "ws")
    (tmp_path / "ws" / "params.yaml").write_text(yaml.safe_dump(
        tiny_params(**{"data.name": "imagefolder", "data.root": str(root)}), sort_keys=False))
    locked = root / "train" / "cat"
    locked.chmod(0o600)  # listed, never entered
    monkeypatch.setattr(stages.prepare, "main", lambda: (_ for _ in ()).throw(_denied(locked / "0001.png")))
    try:
        with pytest.raises(SystemExit):
            run(stages.prepare.main)
    finally:
        locked.chmod(0o755)
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {locked / '0001.png'}: permission denied reading it; the data set's files under "
                   "data.root must be readable by you (chmod -R u+rX)")
