"""Shared fixtures: tiny params and a workspace where the pipeline's relative data/ paths live."""
import copy
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


# The tests' own params: complete (every key the schema asks for), sized to seconds - a digits
# subset, the smallest WRN, two epochs - and never read from the working copy's params.yaml,
# which is the user's to experiment with.
TINY_PARAMS = {
    "data": {"name": "digits", "root": None, "split_seed": 0, "test_fraction": 0.2,
             "digits_size": 32, "cinic10_valid_into_train": False, "pamap2_test_subject": 101, "limit_train": 120,
             "limit_test": 60, "skip_corrupt": False, "shard_size": 64},
    "topology": {
        "engine": "fast", "n_jobs": 1, "shards_per_task": 1, "backend": "loky", "scheduler": None,
        "dtype": "float32",
        "image": {"filtrations": ["sequence"], "threshold": 0.02, "resolution": 50, "sigma": 0.01,
                  "birth_range": [0.0, 0.3], "pers_range": [0.0, 0.3], "orders": ["row", "column"],
                  "cubical_range": [0.0, 1.0], "normalize": True, "min_max": 1e-8},
        "signal": {"threshold": 0.01, "resolution": 64, "sigma": 0.015, "birth_range": [-1.0, 1.0],
                   "pers_range": [-1.0, 1.0], "normalize": True}},
    "models": {"teacher_image": "wrn10_1", "teacher_topology": "wrn10_1", "student": "wrn10_1",
               "teacher_topology_input": "pi"},
    "train": {"optimizer": "adam", "lr": 0.0005, "weight_decay": 0.0, "momentum": 0.9, "epochs": 2,
              "batch_size": 32, "schedule": "none", "milestones": [], "lr_decay": 0.2,
              "augment": False, "seed": 0, "device": "cpu", "num_workers": 0, "nproc": 1,
              "threads": 1, "channels_last": True, "amp": False, "compile": False},
    "distill": {"methods": ["kd", "sp", "tgd", "tpkd"], "anneal": True, "teacher_cache": True,
                "kd": {"lambda": 0.9, "temperature": 4.0, "kl_reduction": "batchmean"},
                "sp": {"lambda": 0.9, "gamma": 1000.0},
                "tgd": {"lambda": 0.9, "temperature": 4.0, "kl_reduction": "batchmean", "alpha": 0.7,
                        "gamma": 1000.0},
                "tpkd": {"lambda": 0.9, "temperature": 4.0, "kl_reduction": "batchmean", "alpha": 0.7,
                         "beta": 200.0},
                "tgd_t1": {"lambda": 0.9, "temperature": 4.0, "kl_reduction": "batchmean", "gamma": 1000.0},
                "aver": {"lambda": 0.9, "temperature": 4.0, "kl_reduction": "batchmean"},
                "dkd": {"ce_weight": 1.0, "alpha": 1.0, "beta": 8.0, "temperature": 4.0, "warmup": 2}},
    "evaluate": {"checkpoint": "last", "batch_size": 256, "noise_std": [0.0, 0.2], "ece_bins": 15,
                 "latency_repeats": 2, "latency_batch": 16},
    "export": {"teachers": False, "opset": 17, "max_abs_diff": 0.001, "min_top1_agreement": 100.0,
               "batch_size": 256},
}


def tiny_params(**overrides) -> dict:
    """A fresh copy of TINY_PARAMS with dotted overrides, e.g. tiny_params(**{"train.epochs": 3})
    or tiny_params(**{"distill.tgd.alpha": 0.99})."""
    raw = copy.deepcopy(TINY_PARAMS)
    for dotted, value in overrides.items():
        *path, key = dotted.split(".")
        node = raw
        for part in path:
            node = node[part]
        node[key] = value
    return raw


@pytest.fixture(autouse=True)
def _quiet_progress(monkeypatch):
    """No progress bars in test logs (tqdm reads TQDM_DISABLE)."""
    monkeypatch.setenv("TQDM_DISABLE", "1")


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
