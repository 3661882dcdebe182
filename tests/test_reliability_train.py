"""Training stages resume after a kill with the same weights, checkpoints and logs as an
uninterrupted CPU run; checkpoints are written atomically; foreign resume files are ignored."""
import contextlib
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch
import yaml

from conftest import kill_group_when, subprocess_env, tiny_params
from pipeline.training import loop as train
from pipeline.checkpoint import load_model, read_checkpoint, save_checkpoint
from pipeline.models import build_model
from pipeline.params import section, validate
from pipeline.prepare import prepare
from pipeline.runs import train_student, train_teacher
from pipeline.runtime import torch_threads
from pipeline.store import tree_digest

SCRATCH = Path("data/models/scratch")
LIVE = Path("data/live/scratch")
RESUME = Path("data/.resume/scratch.pt")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("prepared")
    prepare(section(validate(tiny_params()), "data"), root / "prepared")
    return root / "prepared"


@pytest.fixture(autouse=True)
def single_thread():
    """CPU results are bit-identical for a fixed number of threads; the subprocesses use one
    (and on a small shared machine one thread is also the fastest)."""
    with torch_threads(1):
        yield


def _enter(root: Path, prepared: Path, monkeypatch, **overrides) -> Path:
    """A workspace with the shared prepared data and params; the current directory."""
    (root / "data").mkdir(parents=True)
    shutil.copytree(prepared, root / "data" / "prepared")
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(**overrides), sort_keys=False))
    monkeypatch.chdir(root)
    return root


class Killed(Exception):
    """Stands in for a kill right after an epoch's resume file was written."""


@contextlib.contextmanager
def killed_after_epoch(epochs: int):
    """Training stops as a kill would, once `epochs` epochs are saved (resume file included)."""
    real = train.save_resume

    def save_then_stop(trainer, progress):
        real(trainer, progress)
        if progress.next_epoch >= epochs:
            raise Killed

    with mock.patch.object(train, "save_resume", save_then_stop), pytest.raises(Killed):
        yield


def _params(**overrides):
    return validate(tiny_params(**overrides))


def _weights(path: Path) -> dict:
    return read_checkpoint(path)["state_dict"]


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def _live_history(root: Path) -> dict:
    return {p.name: p.read_text() for p in sorted((root / LIVE / "plots" / "metrics").glob("*.tsv"))}


def test_stopped_then_resumed_equals_uninterrupted(tmp_path, prepared, monkeypatch, capsys):
    params = _params(**{"train.epochs": 3})
    whole = _enter(tmp_path / "whole", prepared, monkeypatch, **{"train.epochs": 3})
    summary = train_student(params)
    assert not RESUME.exists()  # a finished run leaves no resume file

    parts = _enter(tmp_path / "parts", prepared, monkeypatch, **{"train.epochs": 3})
    with killed_after_epoch(1):
        train_student(params)
    assert RESUME.is_file() and not list(RESUME.parent.glob("*.tmp"))
    shutil.rmtree("data/models")  # DVC deletes a stage's outputs before it runs again
    shutil.rmtree("data/live")
    capsys.readouterr()
    assert train_student(params) == summary
    assert "scratch: resuming after epoch 1" in capsys.readouterr().out

    for name in ("last.pt", "best.pt"):
        _assert_same_weights(whole / SCRATCH / name, parts / SCRATCH / name)
    assert _live_history(whole) == _live_history(parts)
    # The stage's outputs, checkpoints and DVCLive logs included, are byte-identical.
    assert tree_digest(whole / SCRATCH) == tree_digest(parts / SCRATCH)
    assert tree_digest(whole / LIVE) == tree_digest(parts / LIVE)
    assert not (parts / RESUME).exists()


@pytest.mark.slow  # a stage in a subprocess, killed and rerun
def test_sigkill_then_rerun_resumes_with_same_weights(tmp_path, prepared, monkeypatch):
    overrides = {"train.epochs": 3}
    ws = _enter(tmp_path / "killed", prepared, monkeypatch, **overrides)
    # The real stage, each resume-file save followed by a pause long enough to be killed in.
    code = ("import runpy, time\n"
            "import pipeline.training.resume as resume\n"
            "save = resume.atomic_save\n"
            "def slow(payload, path):\n"
            "    save(payload, path)\n"
            "    time.sleep(30)\n"
            "resume.atomic_save = slow\n"
            "runpy.run_module('stages.train_student', run_name='__main__', alter_sys=True)\n")
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ws, env=subprocess_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    kill_group_when(process, lambda: (ws / RESUME).is_file(), 90, "no resume file")
    assert process.returncode == -signal.SIGKILL
    assert not (ws / SCRATCH / "summary.json").exists()
    shutil.rmtree(ws / "data" / "models")  # as DVC does before re-running the stage
    shutil.rmtree(ws / "data" / "live", ignore_errors=True)

    rerun = subprocess.run([sys.executable, "-m", "stages.train_student"], cwd=ws, env=subprocess_env(),
                           capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr
    assert "scratch: resuming after epoch 1" in rerun.stdout

    whole = _enter(tmp_path / "whole", prepared, monkeypatch, **overrides)
    train_student(_params(**overrides))
    for name in ("last.pt", "best.pt"):
        _assert_same_weights(whole / SCRATCH / name, ws / SCRATCH / name)
    assert tree_digest(whole / SCRATCH) == tree_digest(ws / SCRATCH)
    assert tree_digest(whole / LIVE) == tree_digest(ws / LIVE)
    assert not (ws / RESUME).exists()


def _model_and_meta():
    meta = {"arch": "wrn10_1", "in_channels": 1, "num_classes": 10, "dims": 2, "input_key": "x"}
    torch.manual_seed(0)
    return build_model("wrn10_1", 1, 10), meta


def test_failed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    model, meta = _model_and_meta()
    path = tmp_path / "last.pt"
    save_checkpoint(path, model, {**meta, "epoch": 1})
    before = path.read_bytes()

    real_save = torch.save

    def dies_mid_write(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 half a zip file")
        raise OSError(28, "No space left on device")

    with torch.no_grad():
        for value in model.parameters():
            value.add_(1.0)
    monkeypatch.setattr(torch, "save", dies_mid_write)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, model, {**meta, "epoch": 2})
    monkeypatch.setattr(torch, "save", real_save)

    assert path.read_bytes() == before  # the previous checkpoint, intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temporary file left
    _, loaded_meta = load_model(path, expect={"arch": "wrn10_1"})
    assert loaded_meta["epoch"] == 1
    # A stray temporary file of a killed write is never read in place of the checkpoint.
    (tmp_path / "last.pt.tmp").write_bytes(b"garbage")
    assert load_model(path)[1]["epoch"] == 1


def test_foreign_or_broken_resume_file_is_ignored(tmp_path, prepared, monkeypatch, capsys):
    seed1 = _params(**{"train.epochs": 2, "train.seed": 1})
    seed0 = _params(**{"train.epochs": 2})
    _enter(tmp_path / "ws", prepared, monkeypatch, **{"train.epochs": 2})
    with killed_after_epoch(1):
        train_student(seed1)  # a resume file of other params
    capsys.readouterr()
    ignored = train_student(seed0)
    out = capsys.readouterr().out
    assert "ignoring data/.resume/scratch.pt, starting at epoch 1" in out and "other params" in out
    assert "resuming" not in out

    shutil.copytree(SCRATCH, tmp_path / "first")
    shutil.rmtree("data/models")
    shutil.rmtree("data/live")
    RESUME.write_bytes(b"\x00 not a torch file")  # damaged: ignored, never fatal
    assert train_student(seed0) == ignored
    assert "unreadable" in capsys.readouterr().out
    _assert_same_weights(tmp_path / "first" / "last.pt", SCRATCH / "last.pt")


def test_damaged_resume_file_is_detected_and_the_run_starts_over(tmp_path, prepared, monkeypatch,
                                                                 capsys):
    """One changed weight in a resume file (its own checksum left as it was) is reported, and
    the run starts from epoch 1: the result is the uninterrupted run's, not a silent mix."""
    params = _params()
    _enter(tmp_path / "whole", prepared, monkeypatch)
    train_student(params)
    _enter(tmp_path / "ws", prepared, monkeypatch)
    with killed_after_epoch(1):
        train_student(params)
    state = torch.load(RESUME, weights_only=True)
    weight = next(v for k, v in state["method"].items() if k.endswith("conv1.weight"))
    weight.view(-1)[0] += 1e-3  # as a flipped bit would, in a weight
    torch.save(state, RESUME)
    shutil.rmtree("data/models")
    shutil.rmtree("data/live")
    capsys.readouterr()
    train_student(params)
    out = capsys.readouterr().out
    assert "ignoring data/.resume/scratch.pt, starting at epoch 1" in out and "checksum" in out, out
    assert "resuming" not in out
    for name in ("last.pt", "best.pt"):
        _assert_same_weights(tmp_path / "whole" / SCRATCH / name, SCRATCH / name)


def test_another_models_resume_file_is_never_taken(tmp_path, prepared, monkeypatch, capsys):
    """teacher_image and scratch share architecture, params and inputs: only the run's name
    tells their resume files apart."""
    _enter(tmp_path / "ws", prepared, monkeypatch)
    with killed_after_epoch(1):
        train_student(_params())
    shutil.copy(RESUME, "data/.resume/teacher_image.pt")
    capsys.readouterr()
    summary = train_teacher("image", _params())
    out = capsys.readouterr().out
    assert "teacher_image: ignoring data/.resume/teacher_image.pt, starting at epoch 1" in out
    assert "another model" in out and "resuming" not in out
    assert summary["epochs"] == 2 and "teacher_image_acc" in summary


def test_same_seed_same_metrics_other_seed_differs(tmp_path, prepared, monkeypatch):
    def history(name: str, seed: int) -> dict:
        _enter(tmp_path / name, prepared, monkeypatch)
        train_student(_params(**{"train.seed": seed}))
        return {**_live_history(tmp_path / name),
                "metrics.json": json.loads((tmp_path / name / LIVE / "metrics.json").read_text())}

    first, again, other = history("a", 0), history("b", 0), history("c", 1)
    assert first == again
    assert first["scratch_loss_ce.tsv"] != other["scratch_loss_ce.tsv"]


def test_a_diverging_run_stops_with_the_epoch_named_and_saves_nothing(tmp_path, prepared, monkeypatch):
    """The loop reads its step results every SYNC_EVERY steps (not every step, so that a GPU is
    never waited for); a non-finite loss still stops the run at the next read, before the epoch
    is saved, with one line naming the model, the epoch and what to change."""
    _enter(tmp_path, prepared, monkeypatch)
    real = train.train_step
    steps = []

    def poisoned(method, ddp, batch, optimizer, ctx=train.distributed.SINGLE):
        steps.append(1)
        result = real(method, ddp, batch, optimizer, ctx)
        if len(steps) == 2:   # the second step's loss comes back NaN
            result.losses = {k: v * float("nan") for k, v in result.losses.items()}
            result.nonfinite = torch.ones(())
        return result

    monkeypatch.setattr(train, "train_step", poisoned)
    monkeypatch.setattr(train, "SYNC_EVERY", 3)
    with pytest.raises(train.TrainingError, match=r"scratch at epoch 1: loss became non-finite \(1 steps\); lower train.lr"):
        train_student(_params(**{"data.limit_train": 120, "train.batch_size": 8}))
    assert len(steps) == 3                              # stopped at the first read after step 2
    assert not (SCRATCH / "last.pt").exists() and not RESUME.exists()
