"""One training loop for every model: teachers, the scratch student and distilled students.

The loop drives a distillation `Method` (pipeline.distill): the method returns the student's
logits and a dict of named, already weighted losses; the loop sums them, steps the optimiser,
and logs each name per epoch with DVCLive.

Reproducible and resumable: shuffling and augmentation draw from a generator seeded by
(seed, epoch), and the global RNGs (dropout, anything a method draws) are re-seeded from
(seed, epoch) at the start of every epoch, so an epoch does not depend on how earlier epochs
ran; after each epoch the whole state (weights, optimiser, schedule, history, the best epoch's
weights) is saved atomically to a resume file outside the stage's outputs. A killed stage
restarts from its last finished epoch, rewrites the checkpoints DVC deleted meanwhile, and ends
with the same weights, checkpoints and logs as an uninterrupted CPU run.
"""
from __future__ import annotations

import copy
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from pipeline.checkpoint import atomic_save, save_checkpoint
from pipeline.errors import CheckpointError, PipelineError
from pipeline.inputs import Inputs, to_unit
from pipeline.store import write_json

RESUME_DIR = Path("data/.resume")


# What a resume file holds (besides its fingerprint).
RESUME_KEYS = ("epoch", "history", "best_acc", "best", "last_meta", "method", "optimizer", "scheduler")


class TrainingError(PipelineError, FloatingPointError):
    """Training diverged (non-finite loss): fixable by params, reported as one line."""


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise CheckpointError("train.device=cuda but no CUDA device is available")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


def fingerprint(*parts: Any) -> str:
    """A stable hash of everything that defines a run (params, architecture, input identity)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """Shuffling and augmentation randomness of one epoch, independent of earlier epochs."""
    generator = torch.Generator(device="cpu")
    generator.manual_seed(epoch_seed(seed, epoch))
    return generator


def seed_epoch(seed: int, epoch: int) -> None:
    """Re-seed the global RNGs (dropout, random draws inside methods) for one epoch, so that a
    run resumed at this epoch draws exactly what an uninterrupted run draws."""
    value = epoch_seed(seed, epoch) + 1  # distinct from the shuffling generator's stream
    random.seed(value)
    np.random.seed(value % 2**32)
    torch.manual_seed(value)


def _load_resume(resume_path: Path, spec: "RunSpec") -> dict[str, Any] | None:
    """The resume state at `resume_path` if it belongs to this run; None (and why) otherwise."""
    if not resume_path.is_file():
        return None
    try:
        state = torch.load(resume_path, map_location="cpu", weights_only=True)
    except Exception as error:  # a foreign or damaged file: never trusted, never fatal
        print(f"{spec.name}: ignoring {resume_path}, starting at epoch 1 "
              f"(unreadable: {type(error).__name__})")
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != spec.fingerprint:
        print(f"{spec.name}: ignoring {resume_path}, starting at epoch 1 "
              f"(it belongs to other params, architecture or inputs)")
        return None
    missing = [k for k in RESUME_KEYS if k not in state]
    if missing:
        print(f"{spec.name}: ignoring {resume_path}, starting at epoch 1 (an older format: no {missing})")
        return None
    return state


def augment_images(x: Tensor, generator: torch.Generator, pad: int = 4) -> Tensor:
    """Random crop (zero padding `pad`) and horizontal flip of a channels-first image batch."""
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
    flip = torch.rand(n, generator=generator) < 0.5
    out = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    out[flip] = out[flip].flip(-1)
    return out


def make_optimizer(parameters, cfg: dict[str, Any]) -> torch.optim.Optimizer:
    if cfg["optimizer"] == "adam":
        return torch.optim.Adam(parameters, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    return torch.optim.SGD(parameters, lr=cfg["lr"], momentum=cfg["momentum"],
                           weight_decay=cfg["weight_decay"], nesterov=cfg["momentum"] > 0)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: dict[str, Any]):
    if cfg["schedule"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg["epochs"])
    if cfg["schedule"] == "step":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, cfg["milestones"], gamma=cfg["lr_decay"])
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


@dataclass
class RunSpec:
    """Who is trained and where its artifacts go."""

    name: str                    # scratch, kd, tgd, teacher_image, ... (lands in metric names)
    model_meta: dict[str, Any]   # arch, in_channels, num_classes, dims, input_key
    out_dir: Path                # last.pt, best.pt
    live_dir: Path               # DVCLive metrics.json and per-epoch plots
    fingerprint: str             # identity of the run; a resume file must match it


def make_batch(inputs: Inputs, split: str, index: Tensor, keys: tuple[str, ...],
               augment: Callable[[Tensor], Tensor] | None = None) -> dict[str, Tensor]:
    tensors = inputs.splits[split]
    batch = {"y": tensors["y"][index]}
    for key in keys:
        if key == "x" and augment is not None:
            batch["x"] = inputs.normalizers["x"](augment(to_unit(tensors["x"][index])))
        else:
            batch[key] = inputs.model_input(key, tensors[key][index])
    return batch


@torch.no_grad()
def test_accuracy(model: nn.Module, inputs: Inputs, key: str, batch_size: int = 512) -> float:
    was_training = model.training
    model.eval()
    tensors = inputs.splits["test"]
    correct = 0
    for start in range(0, len(tensors["y"]), batch_size):
        index = torch.arange(start, min(start + batch_size, len(tensors["y"])))
        logits, _ = model(inputs.model_input(key, tensors[key][index]))
        correct += (logits.argmax(1).cpu() == tensors["y"][index].cpu()).sum().item()
    model.train(was_training)
    return 100.0 * correct / len(tensors["y"])


def _open_live(live_dir: Path):
    from dvclive import Live

    # dvcyaml=False: never rewrite dvc.yaml from inside a stage; no experiment saving either.
    return Live(str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None)


def fit(method: nn.Module, inputs: Inputs, cfg: dict[str, Any], spec: RunSpec,
        keys: tuple[str, ...], device: torch.device, resume_dir: Path = RESUME_DIR,
        progress: bool = True, stop_after_epoch: int | None = None) -> dict[str, Any]:
    """Train `method.student` for cfg["epochs"] epochs; write checkpoints, live logs and metrics.

    `stop_after_epoch` ends the run early as a kill would (after saving that epoch's resume
    state); tests use it to check that a resumed run reproduces an uninterrupted one.
    """
    student = method.student
    optimizer = make_optimizer(list(method.student_parameters()), cfg)
    scheduler = make_scheduler(optimizer, cfg)
    resume_path = Path(resume_dir) / f"{spec.name}.pt"
    history: list[dict[str, float]] = []
    best_acc, start_epoch = -1.0, 0
    best: dict[str, Any] | None = None  # the best epoch's {"meta", "state_dict"}
    state = _load_resume(resume_path, spec)
    if state is not None:
        try:
            method.load_state_dict(state["method"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            history, best_acc, start_epoch = state["history"], state["best_acc"], state["epoch"] + 1
            best, last_meta = state["best"], state["last_meta"]
        except (RuntimeError, ValueError) as error:
            raise CheckpointError(f"{resume_path}: resume state does not fit this run "
                                  f"({type(error).__name__}: {str(error).splitlines()[0]}); "
                                  "delete it to start over") from None
        print(f"{spec.name}: resuming after epoch {start_epoch} from {resume_path}")
        # DVC deleted the stage's outputs before this run: restore the finished epochs' ones.
        save_checkpoint(spec.out_dir / "last.pt", student, last_meta)
        best_model = copy.deepcopy(student)  # saved from a model, byte-identical to the original
        best_model.load_state_dict(best["state_dict"])
        save_checkpoint(spec.out_dir / "best.pt", best_model, best["meta"])
        del best_model

    live = _open_live(spec.live_dir)
    for past in history:  # DVC cleared the live folder: replay the finished epochs' logs
        for metric, value in past.items():
            live.log_metric(metric, value)
        live.next_step()

    do_augment = cfg["augment"] and inputs.modality == "image"
    n = len(inputs.splits["train"]["y"])
    epochs = range(start_epoch, cfg["epochs"])
    for epoch in tqdm(epochs, desc=spec.name, unit="epoch", disable=not progress):
        seed_epoch(cfg["seed"], epoch)
        generator = epoch_generator(cfg["seed"], epoch)
        order = torch.randperm(n, generator=generator)
        augment = (lambda x: augment_images(x, generator)) if do_augment else None  # noqa: E731
        method.train()
        sums: dict[str, float] = {}
        correct = 0
        for start in range(0, n, cfg["batch_size"]):
            index = order[start:start + cfg["batch_size"]]
            batch = make_batch(inputs, "train", index, keys, augment)
            logits, losses = method(batch)
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise TrainingError(f"{spec.name}: loss became {loss.item()} at epoch {epoch + 1}; "
                                    "lower train.lr or the distill weights")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            size = len(index)
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + value.item() * size
            correct += (logits.argmax(1) == batch["y"]).sum().item()
        scheduler.step()

        acc = test_accuracy(student, inputs, spec.model_meta["input_key"])
        record = {f"{spec.name}_acc": acc, f"{spec.name}_train_acc": 100.0 * correct / n,
                  **{f"{spec.name}_loss_{k}": v / n for k, v in sums.items()},
                  f"{spec.name}_lr": optimizer.param_groups[0]["lr"]}
        history.append(record)
        for metric, value in record.items():
            live.log_metric(metric, value)
        live.next_step()

        meta = {**spec.model_meta, "epoch": epoch + 1, "test_acc": acc, "fingerprint": spec.fingerprint}
        save_checkpoint(spec.out_dir / "last.pt", student, meta)
        if acc > best_acc:
            best_acc = acc
            best = {"meta": meta, "state_dict": {k: v.detach().clone() for k, v in student.state_dict().items()}}
            save_checkpoint(spec.out_dir / "best.pt", student, meta)
        atomic_save({"fingerprint": spec.fingerprint, "epoch": epoch, "history": history,
                     "best_acc": best_acc, "best": best, "last_meta": meta,
                     "method": method.state_dict(),
                     "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
                    resume_path)
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
            live.end()
            return {"stopped_after_epoch": epoch + 1}

    live.end()
    summary = {f"{spec.name}_acc": history[-1][f"{spec.name}_acc"], f"{spec.name}_best_acc": best_acc,
               f"{spec.name}_best_epoch": 1 + max(range(len(history)), key=lambda i: history[i][f"{spec.name}_acc"]),
               "epochs": cfg["epochs"]}
    write_json(spec.out_dir / "summary.json", summary)
    resume_path.unlink(missing_ok=True)
    return summary
