"""The source data under data.root is a DVC dependency: fingerprint, remote copies, the DVC stage."""
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import fsspec
import numpy as np
import pytest
from PIL import Image

from conftest import tiny_params
from tests.test_dvc import make_project
from pipeline.remote import local_root
from pipeline.source import changes, source_fingerprint


def _image_tree(root: Path, per_class: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label in ("cat", "dog"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def test_fingerprint_follows_added_removed_and_rewritten_files(tmp_path):
    root = _image_tree(tmp_path / "tree")
    first = source_fingerprint(str(root))
    assert first["files"] == 16 and set(first["folders"]) == {"train/cat", "train/dog", "test/cat", "test/dog"}
    assert source_fingerprint(str(root)) == first  # listing again changes nothing

    (root / "train" / ".DS_Store").write_bytes(b"ignored, as the loaders ignore it")
    assert source_fingerprint(str(root)) == first

    shutil.copy(root / "train/cat/0.png", root / "train/cat/9.png")
    added = source_fingerprint(str(root))
    assert added["digest"] != first["digest"]
    assert changes(first, added) == [f"train/cat: 4 -> 5 files, {first['folders']['train/cat']['bytes']} -> "
                                     f"{added['folders']['train/cat']['bytes']} bytes"]

    (root / "train/cat/9.png").unlink()
    assert source_fingerprint(str(root)) == first  # back to the same files, sizes and times

    stamp = (root / "test/dog/1.png").stat()
    os.utime(root / "test/dog/1.png", ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))  # rewritten
    touched = source_fingerprint(str(root))
    assert touched["digest"] != first["digest"] and changes(first, touched)[0].startswith("test/dog:")

    shutil.rmtree(root / "test/dog")
    assert changes(first, source_fingerprint(str(root))) == ["test/dog: gone (4 files)"]


def test_no_root_has_a_constant_fingerprint():
    assert source_fingerprint(None) == source_fingerprint(None)
    assert source_fingerprint(None)["files"] == 0


def test_missing_root_names_it(tmp_path):
    with pytest.raises(Exception, match="data.root .*nowhere: no such folder"):
        source_fingerprint(str(tmp_path / "nowhere"))


def test_remote_root_fingerprint_and_copy_follow_the_remote(tmp_path, monkeypatch):
    """A URL root is listed through fsspec; the local copy is refreshed when the remote changes."""
    monkeypatch.chdir(tmp_path)
    tree = _image_tree(tmp_path / "tree")
    url = f"memory://tgd-source-{uuid.uuid4().hex[:8]}/tree"
    fs = fsspec.filesystem("memory")
    fs.put(str(tree), url.split("://", 1)[1], recursive=True)
    try:
        remote = source_fingerprint(url)
        assert remote["files"] == 16 and set(remote["folders"]) == set(source_fingerprint(str(tree))["folders"])
        copy = Path(local_root(url))
        assert (copy / "train/cat/0.png").read_bytes() == (tree / "train/cat/0.png").read_bytes()

        new = Image.fromarray(np.full((8, 8, 3), 7, np.uint8))
        new.save(tmp_path / "new.png")
        fs.put(str(tmp_path / "new.png"), url.split("://", 1)[1] + "/train/cat/0.png")
        assert changes(remote, source_fingerprint(url))[0].startswith("train/cat:")
        refreshed = Path(local_root(url))
        assert (refreshed / "train/cat/0.png").read_bytes() == (tmp_path / "new.png").read_bytes()
    finally:
        fs.rm(url.split("://", 1)[1].split("/")[0], recursive=True)


# ------------------------------------------------------------------------------ DVC

dvc_missing = shutil.which("dvc") is None and not Path(sys.executable).with_name("dvc").exists()


def _sh(cwd: Path, *args: str) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"})
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.skipif(dvc_missing, reason="dvc is not installed")
def test_dvc_reruns_prepare_exactly_when_the_image_folder_changes(tmp_path):
    tree = _image_tree(tmp_path / "images")
    project = tmp_path / "project"
    params = tiny_params(**{"data.name": "imagefolder", "data.root": str(tree), "data.limit_train": None,
                            "data.limit_test": None})
    make_project(project, params)

    first = _sh(project, "dvc", "repro", "prepare")
    assert "Running stage 'source'" in first and "Running stage 'prepare'" in first
    assert "source: 16 files" in first
    assert "always changed" in _sh(project, "dvc", "status")  # DVC cannot look outside by itself

    unchanged = _sh(project, "dvc", "repro", "prepare")
    assert "Running stage 'source'" in unchanged and "Stage 'prepare' didn't change, skipping" in unchanged

    shutil.copy(tree / "train/dog/0.png", tree / "train/dog/7.png")
    refreshed = _sh(project, "dvc", "repro", "--single-item", "source")  # the fingerprint only
    assert "source changed since the last run: train/dog: 4 -> 5 files" in refreshed
    status = _sh(project, "dvc", "status")
    assert "changed deps" in status and "modified:" in status and "data/source.json" in status

    rerun = _sh(project, "dvc", "repro", "prepare")
    assert "Running stage 'prepare'" in rerun
    summary = json.loads((project / "data/prepared/summary.json").read_text())
    assert summary["splits"]["train"]["n"] == 9
