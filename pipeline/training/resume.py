"""The resume file: a training run's whole state after every epoch, outside DVC's outputs.

Written atomically after each epoch, with a checksum of its contents and the run's identity
(`RunSpec.resume_fingerprint`); a killed stage restarts from its last finished epoch, rewrites
the checkpoints DVC deleted meanwhile and ends with the same weights as an uninterrupted run. A
missing, foreign or damaged file is reported in one line and the run starts at epoch 1.
"""
from __future__ import annotations

import copy
from typing import Any

import torch

from pipeline import distributed
from pipeline.checkpoint import atomic_save, save_checkpoint, state_digest
from pipeline.errors import CheckpointError
from pipeline.training.state import Progress, RunSpec, Trainer

# What a resume file holds besides its fingerprint and checksum.
RESUME_KEYS = ("epoch", "history", "best_acc", "best", "last_meta", "method", "optimizer", "scheduler")


def _ignore(spec: RunSpec, why: str) -> None:
    print(f"{spec.name}: ignoring {spec.resume_path}, starting at epoch 1 ({why})")


def load_resume(spec: RunSpec) -> dict[str, Any] | None:
    """The resume state of this run, or None (and why) for a missing, foreign or damaged file."""
    if not spec.resume_path.is_file():
        return None
    try:
        state = torch.load(spec.resume_path, map_location="cpu", weights_only=True)
    except Exception as error:  # a foreign or damaged file: never trusted, never fatal
        return _ignore(spec, f"unreadable: {type(error).__name__}")
    if not isinstance(state, dict) or state.get("fingerprint") != spec.resume_fingerprint:
        return _ignore(spec, "it belongs to another model, other params, architecture or inputs")
    missing = [k for k in (*RESUME_KEYS, "checksum") if k not in state]
    if missing:
        return _ignore(spec, f"an older format: no {missing}")
    if state_digest({k: state[k] for k in RESUME_KEYS}) != state["checksum"]:
        return _ignore(spec, "damaged: its checksum does not match its contents")
    return state


def save_resume(trainer: Trainer, progress: Progress) -> None:
    state = {"epoch": progress.next_epoch - 1, "history": progress.history,
             "best_acc": progress.best_acc, "best": progress.best, "last_meta": progress.last_meta,
             "method": trainer.method.state_dict(), "optimizer": trainer.optimizer.state_dict(),
             "scheduler": trainer.scheduler.state_dict()}
    atomic_save({"fingerprint": trainer.spec.resume_fingerprint, "checksum": state_digest(state),
                 **state}, trainer.spec.resume_path)


def restore(trainer: Trainer) -> Progress:
    """The finished epochs of an interrupted run (its state loaded into the method, optimiser
    and schedule, its checkpoints rewritten), or a fresh start."""
    spec = trainer.spec
    state = distributed.from_main(lambda: load_resume(spec))  # all ranks agree
    if state is None:
        return Progress()
    try:
        trainer.method.load_state_dict(state["method"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.scheduler.load_state_dict(state["scheduler"])
    except (RuntimeError, ValueError) as error:
        raise CheckpointError(f"{spec.resume_path}: resume state does not fit this run "
                              f"({type(error).__name__}: {str(error).splitlines()[0]}); "
                              "delete it to start over") from None
    progress = Progress(state["epoch"] + 1, state["history"], state["best_acc"], state["best"],
                        state["last_meta"])
    if trainer.main:
        print(f"{spec.name}: resuming after epoch {progress.next_epoch} from {spec.resume_path}")
        # DVC deleted the stage's outputs before this run: restore the finished epochs' ones.
        student = trainer.method.student
        save_checkpoint(spec.out_dir / "last.pt", student, progress.last_meta)
        best_model = copy.deepcopy(student)  # saved from a model, byte-identical to the original
        best_model.load_state_dict(progress.best["state_dict"])
        save_checkpoint(spec.out_dir / "best.pt", best_model, progress.best["meta"])
    return progress
