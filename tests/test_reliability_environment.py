"""The environment's faults are one line naming the path, the key or the package, never a traceback:
a full disk, a read-only or forbidden data/, a URL whose fsspec backend is missing, a refused
connection, and an image far larger than the rest of its set."""
import errno
import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, ImageFile

import stages.prepare
import stages.source
import stages.topology
from conftest import subprocess_env, tiny_params
from pipeline.data import load_dataset
from pipeline.errors import DataError
from stages._cli import describe_os_error, run


def _one_line_error(main, capsys) -> str:
    """Run a stage's main as its command does; return its one error line (the last on stderr,
    under a progress bar at most), with no traceback."""
    with pytest.raises(SystemExit) as exit_info:
        run(main)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and err.splitlines()[-1] == errors[0], err
    return errors[0]


def _params(workspace: Path, **overrides) -> None:
    (workspace / "params.yaml").write_text(yaml.safe_dump(tiny_params(**overrides), sort_keys=False))


# ------------------------------------------------------------------------------ full disk

def test_full_disk_while_topology_writes_names_the_shard(workspace, capsys, monkeypatch):
    run(stages.prepare.main)
    import zarr.storage._local as local

    put = local._put

    def full(path, value, exclusive=False):
        if Path(path).parent.name == "pis" and Path(path).name.startswith("c."):  # a persistence-image shard
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return put(path, value, exclusive=exclusive)

    monkeypatch.setattr(local, "_put", full)
    err = _one_line_error(stages.topology.main, capsys)
    assert "no space left on device" in err
    assert f"data{os.sep}.staging{os.sep}topology{os.sep}train.zarr{os.sep}pis{os.sep}c." in err
    assert not (workspace / "data" / "topology" / "stats.json").exists()


def test_full_disk_while_creating_the_topology_stores_names_the_store(workspace, capsys, monkeypatch):
    run(stages.prepare.main)
    import zarr.storage._local as local

    def full(path, value, exclusive=False):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(local, "_put", full)
    err = _one_line_error(stages.topology.main, capsys)
    assert "no space left on device" in err and f"topology{os.sep}train.zarr" in err


def test_full_disk_while_prepare_writes_names_the_store(workspace, capsys, monkeypatch):
    import zarr.storage._local as local

    def full(path, value, exclusive=False):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(local, "_put", full)
    err = _one_line_error(stages.prepare.main, capsys)
    assert "no space left on device" in err and "train.zarr" in err


def test_full_disk_while_training_names_the_code_that_wrote(workspace, capsys, monkeypatch):
    """torch.save into an open file raises ENOSPC without a file name: the line names the writer."""
    run(stages.prepare.main)
    import pipeline.checkpoint
    from stages import train_student

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pipeline.checkpoint.torch, "save", full)
    err = _one_line_error(train_student.main, capsys)
    assert "no space left on device" in err and "pipeline/checkpoint.py" in err


# ------------------------------------------------------------------------------ read-only data/

def test_read_only_data_folder_names_the_path(workspace, capsys, monkeypatch):
    """EROFS (a read-only mount) when the stage creates its output folder. Patched rather than
    mounted: tests cannot mount file systems."""
    makedirs = os.makedirs

    def read_only(path, *args, **kwargs):
        if "prepared" in str(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return makedirs(path, *args, **kwargs)

    monkeypatch.setattr(os, "makedirs", read_only)
    err = _one_line_error(stages.prepare.main, capsys)
    assert "read-only file system" in err and "prepared" in err


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="running as root: chmod does not stop root from writing")
def test_unwritable_data_folder_names_the_path(workspace, capsys):
    (workspace / "data").mkdir()
    os.chmod(workspace / "data", 0o555)
    try:
        err = _one_line_error(stages.prepare.main, capsys)
    finally:
        os.chmod(workspace / "data", 0o755)
    assert "permission denied" in err and "data" in err


def test_permission_denied_on_the_staging_folder_names_it(workspace, capsys, monkeypatch):
    """EACCES where the topology stage keeps its resumable work (patched: the tests may run as root)."""
    run(stages.prepare.main)
    mkdir = Path.mkdir

    def forbidden(self, *args, **kwargs):
        if ".staging" in self.parts:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", forbidden)
    err = _one_line_error(stages.topology.main, capsys)
    assert "permission denied" in err and ".staging" in err


# ------------------------------------------------------------------------------ URLs

@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed here")
def test_url_without_its_fsspec_backend_names_the_package(workspace, capsys):
    _params(workspace, **{"data.name": "imagefolder", "data.root": "s3://some-bucket/cifar10-jpeg"})
    for main in (stages.source.main, stages.prepare.main):
        err = _one_line_error(main, capsys)
        assert "s3://some-bucket/cifar10-jpeg" in err and "pip install s3fs" in err


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_refused_connection_names_the_url(workspace, capsys):
    pytest.importorskip("aiohttp", reason="fsspec's http:// needs aiohttp")
    url = f"http://127.0.0.1:{_closed_port()}/cifar10-jpeg"
    _params(workspace, **{"data.name": "imagefolder", "data.root": url})
    for main in (stages.source.main, stages.prepare.main):
        err = _one_line_error(main, capsys)
        assert f"data.root {url}: cannot connect" in err and "Connection refused" in err


def test_unreachable_dask_scheduler_names_the_key(workspace, capsys, monkeypatch):
    pytest.importorskip("distributed")
    import dask

    run(stages.prepare.main)
    address = f"tcp://127.0.0.1:{_closed_port()}"
    _params(workspace, **{"topology.backend": "dask", "topology.scheduler": address})
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        err = _one_line_error(stages.topology.main, capsys)
    assert f"topology.scheduler {address}: cannot connect" in err


def test_os_errors_without_a_file_name_name_the_project_code(tmp_path, monkeypatch):
    from pipeline.store import write_json

    def full(self, text, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_text", full)
    try:
        write_json(tmp_path / "x.json", {"a": 1})
    except OSError as error:
        line = describe_os_error(error)
    assert line.startswith("a file written by pipeline/store.py:")
    assert "(write_json): no space left on device" in line
    refused = describe_os_error(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"))
    assert "cannot connect (Connection refused)" in refused


# ------------------------------------------------------------------------------ oversized image

def test_oversized_image_fails_from_its_header_before_decoding(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label in ("cat", "dog"):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    big = tmp_path / "train" / "dog" / "1b.png"
    Image.new("RGB", (4000, 4000)).save(big)
    decoded = []
    load = ImageFile.ImageFile.load

    def recording(self):
        decoded.append(self.size)
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", recording)
    with pytest.raises(DataError) as error:
        load_dataset({"name": "imagefolder", "root": str(tmp_path)})
    message = str(error.value)
    assert "\n" not in message and str(big) in message and "4000x4000" in message and "32x32" in message
    assert (4000, 4000) not in decoded  # rejected from the header: its pixels were never decoded


def test_stage_subprocess_prints_one_line_for_a_missing_backend(workspace):
    """The same through `python -m`, as DVC runs it: exit status 1, one line, no traceback."""
    if importlib.util.find_spec("s3fs") is not None:
        pytest.skip("s3fs is installed here")
    _params(workspace, **{"data.name": "imagefolder", "data.root": "s3://some-bucket/x"})
    done = subprocess.run([sys.executable, "-m", "stages.prepare"], cwd=workspace, env=subprocess_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: s3://some-bucket/x: s3:// needs the package s3fs, which is not installed (pip install s3fs)"]

