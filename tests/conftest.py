"""Shared fixtures: tiny params and a workspace where the pipeline's relative data/ paths live."""
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CIFAR_TAR = SHARED / "datasets" / "cifar10-jpeg.tar.gz"


def tiny_params(**overrides) -> dict:
    """params.yaml shrunk to seconds: a digits subset, the smallest WRN, two epochs."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"].update(limit_train=120, limit_test=60, shard_size=64)
    raw["topology"].update(engine="fast", n_jobs=1)
    raw["models"] = {"teacher_image": "wrn10_1", "teacher_topology": "wrn10_1", "student": "wrn10_1"}
    raw["train"].update(epochs=2, batch_size=32, device="cpu")
    raw["evaluate"].update(latency_repeats=2, noise_std=[0.0, 0.2])
    for dotted, value in overrides.items():
        section, key = dotted.split(".", 1)
        raw[section][key] = value
    return raw


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A folder with params.yaml where the stages' data/ paths resolve."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    return tmp_path


def subprocess_env() -> dict:
    """The environment of a stage run in a subprocess: this checkout importable, one thread each."""
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "NUMBA_NUM_THREADS": "1"}


def kill_group_when(process: subprocess.Popen, ready: Callable[[], bool], timeout: float,
                    what: str) -> None:
    """Wait until `ready()` (the process still alive), then kill -9 its whole process group
    (it was started with start_new_session=True) and reap it."""
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, f"{what} after {timeout:.0f} s"
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait()
