"""Training under torchrun: 2 gloo processes on CPU (DistributedDataParallel) follow the
single-process loss curve, and only rank 0 writes checkpoints, logs, resume file and summary."""
import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, tiny_params
from pipeline.checkpoint import load_model
from pipeline.params import section, validate
from pipeline.prepare import prepare
from pipeline.runs import train_student
from pipeline.runtime import torch_threads

pytestmark = pytest.mark.slow  # torchrun subprocesses

EPOCHS = 3
OVERRIDES = {"train.epochs": EPOCHS}
OUTPUTS = ("data/models", "data/live", "data/.resume")

# Each rank runs the real stage in its own folder: rank 1's folder must stay free of outputs
# (on a multi-node run without a shared file system, other nodes write nothing either).
RANK_SCRIPT = """\
import os, runpy, sys
os.chdir(sys.argv[1 + int(os.environ["RANK"])])
sys.argv = [sys.argv[0]]
runpy.run_module("stages.train_student", run_name="__main__", alter_sys=True)
"""


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("prepared")
    prepare(section(validate(tiny_params()), "data"), root / "prepared")
    return root / "prepared"


def _workspace(root: Path, prepared: Path, **overrides) -> Path:
    (root / "data").mkdir(parents=True)
    shutil.copytree(prepared, root / "data" / "prepared")
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(**overrides), sort_keys=False))
    return root


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _curve(root: Path, metric: str) -> list[float]:
    with open(root / "data/live/scratch/plots/metrics" / f"{metric}.tsv") as handle:
        return [float(row[metric]) for row in csv.DictReader(handle, delimiter="\t")]


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def single(tmp_path_factory, prepared) -> Path:
    """The single-process run (in this process, one thread), the reference curve."""
    root = _workspace(tmp_path_factory.mktemp("single"), prepared, **OVERRIDES)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        with torch_threads(1):
            train_student(validate(tiny_params(**OVERRIDES)))
    finally:
        os.chdir(cwd)
    return root


def test_torchrun_two_gloo_ranks_match_single_process(tmp_path, prepared, single):
    rank0 = _workspace(tmp_path / "rank0", prepared, **OVERRIDES)
    rank1 = _workspace(tmp_path / "rank1", prepared, **OVERRIDES)
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
          str(script), str(rank0), str(rank1)], cwd=tmp_path)

    ddp, one = _curve(rank0, "scratch_loss_ce"), _curve(single, "scratch_loss_ce")
    assert len(ddp) == len(one) == EPOCHS
    # Close, not equal: BatchNorm normalises each rank's half-batch with its own statistics.
    assert ddp == pytest.approx(one, rel=5e-2), (ddp, one)
    assert ddp != one  # really trained in two processes (else the comparison proves nothing)

    # Rank 0 alone wrote: checkpoints (plain student's keys), logs and summary; no resume file.
    for name in ("last.pt", "best.pt", "summary.json"):
        assert (rank0 / "data/models/scratch" / name).is_file(), name
    model, meta = load_model(rank0 / "data/models/scratch/last.pt", expect={"arch": "wrn10_1"})
    assert meta["epoch"] == EPOCHS
    assert not any(k.startswith("module.") for k in model.state_dict())
    assert not list((rank0 / "data/.resume").glob("*"))
    for output in OUTPUTS:
        assert not (rank1 / output).exists(), output


def test_nproc_param_relaunches_the_stage_under_torchrun(tmp_path, prepared, single):
    """`train.nproc: 2` under a plain `python -m stages.train_student` (what dvc.yaml runs)."""
    ws = _workspace(tmp_path / "ws", prepared, **{**OVERRIDES, "train.nproc": 2})
    done = _run([sys.executable, "-m", "stages.train_student"], cwd=ws)
    summary = [line for line in done.stdout.splitlines() if line.startswith("scratch: ")]
    assert len(summary) == 1 and "test accuracy" in summary[0]  # printed once, by rank 0
    ddp, one = _curve(ws, "scratch_loss_ce"), _curve(single, "scratch_loss_ce")
    assert ddp == pytest.approx(one, rel=5e-2), (ddp, one)
    assert ddp != one  # two ranks, not one process
    load_model(ws / "data/models/scratch/last.pt", expect={"arch": "wrn10_1"})
