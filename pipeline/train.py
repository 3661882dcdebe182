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

from pipeline import distributed
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
def test_correct(model: nn.Module, inputs: Inputs, key: str, part: slice | None = None,
                 batch_size: int = 512) -> int:
    """Correctly classified test samples among `part` of the test split (all by default)."""
    was_training = model.training
    model.eval()
    tensors = inputs.splits["test"]
    first, stop, _ = (part or slice(None)).indices(len(tensors["y"]))
    correct = 0
    for start in range(first, stop, batch_size):
        index = torch.arange(start, min(start + batch_size, stop))
        logits, _ = model(inputs.model_input(key, tensors[key][index]))
        correct += (logits.argmax(1).cpu() == tensors["y"][index].cpu()).sum().item()
    model.train(was_training)
    return correct


def test_accuracy(model: nn.Module, inputs: Inputs, key: str, batch_size: int = 512,
                  ctx: distributed.Context = distributed.SINGLE) -> float:
    """Test accuracy in percent; under DDP each rank classifies its share and counts are summed
    (call it on every rank, with the same weights and BatchNorm statistics)."""
    n = len(inputs.splits["test"]["y"])
    if not ctx.active:
        return 100.0 * test_correct(model, inputs, key, batch_size=batch_size) / n
    correct = test_correct(model, inputs, key, distributed.share(n, ctx), batch_size)
    return 100.0 * distributed.all_reduce_sum([correct])[0] / n


def distributed_step(method: nn.Module, ddp: nn.Module, batch: dict[str, Tensor],
                      optimizer: torch.optim.Optimizer, sums: dict[str, float],
                      ctx: distributed.Context, name: str, epoch: int) -> int:
    """One optimiser step of a DDP rank on its share of the global batch `batch`.

    The share's mean loss is weighted by `len(share) * world_size / len(batch)`: DDP averages
    the ranks' gradients, so the result is the gradient of the global batch's mean loss. A rank
    whose share is empty (a last batch smaller than the world) runs one sample with weight 0,
    so that every rank takes part in DDP's gradient all-reduce. Adds each named loss times the
    share's size to `sums`; returns the share's correctly classified count.
    """
    n = len(batch["y"])
    part = distributed.share(n, ctx)
    size = part.stop - part.start
    local = {k: v[part] if size else v[n - 1:] for k, v in batch.items()}
    with distributed.student_wrapped(method, ddp):
        logits, losses = method(local)
    loss = sum(losses.values())
    bad = distributed.all_reduce_sum([0.0 if (size == 0 or torch.isfinite(loss)) else 1.0])[0]
    if bad:
        raise TrainingError(f"{name}: loss became non-finite at epoch {epoch + 1} on {int(bad)} of "
                            f"{ctx.world_size} ranks; lower train.lr or the distill weights")
    optimizer.zero_grad(set_to_none=True)
    (loss * (size * ctx.world_size / n)).backward()
    optimizer.step()
    for key, value in losses.items():  # every rank the same keys: they are all-reduced
        sums[key] = sums.get(key, 0.0) + (value.item() * size if size else 0.0)
    return (logits.argmax(1) == local["y"]).sum().item() if size else 0


def _open_live(live_dir: Path):
    from dvclive import Live

    # dvcyaml=False: never rewrite dvc.yaml from inside a stage; no experiment saving either.
    return Live(str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None)


def fit(method: nn.Module, inputs: Inputs, cfg: dict[str, Any], spec: RunSpec,
        keys: tuple[str, ...], device: torch.device, resume_dir: Path = RESUME_DIR,
        progress: bool = True, stop_after_epoch: int | None = None,
        teacher_feed: Callable[[int, int, Tensor], Any] | None = None) -> dict[str, Any]:
    """Train `method.student` for cfg["epochs"] epochs; write checkpoints, live logs and metrics.

    `teacher_feed(epoch, step, index)`, when given, supplies the batch's stored teacher outputs
    (pipeline.teacher_cache) as batch["teachers"]: the method reads them instead of running
    the teachers.

    `stop_after_epoch` ends the run early as a kill would (after saving that epoch's resume
    state); tests use it to check that a resumed run reproduces an uninterrupted one.

    Under torchrun (pipeline.distributed) every rank calls fit: the student is wrapped in
    DistributedDataParallel, each rank trains on its share of every global batch, the logged
    numbers are summed over ranks, and only rank 0 writes files. Without it nothing changes.
    """
    ctx = distributed.context()
    main = ctx.is_main
    student = method.student
    ddp = distributed.wrap(student, device)  # None when not distributed
    optimizer = make_optimizer(list(method.student_parameters()), cfg)
    scheduler = make_scheduler(optimizer, cfg)
    resume_path = Path(resume_dir) / f"{spec.name}.pt"
    history: list[dict[str, float]] = []
    best_acc, start_epoch = -1.0, 0
    best: dict[str, Any] | None = None  # the best epoch's {"meta", "state_dict"}
    state = distributed.from_main(lambda: _load_resume(resume_path, spec))  # all ranks agree
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
        if main:
            print(f"{spec.name}: resuming after epoch {start_epoch} from {resume_path}")
            # DVC deleted the stage's outputs before this run: restore the finished epochs' ones.
            save_checkpoint(spec.out_dir / "last.pt", student, last_meta)
            best_model = copy.deepcopy(student)  # saved from a model, byte-identical to the original
            best_model.load_state_dict(best["state_dict"])
            save_checkpoint(spec.out_dir / "best.pt", best_model, best["meta"])
            del best_model

    live = _open_live(spec.live_dir) if main else distributed.NullLive()
    for past in history:  # DVC cleared the live folder: replay the finished epochs' logs
        for metric, value in past.items():
            live.log_metric(metric, value)
        live.next_step()

    do_augment = cfg["augment"] and inputs.modality == "image"
    n = len(inputs.splits["train"]["y"])
    epochs = range(start_epoch, cfg["epochs"])
    for epoch in tqdm(epochs, desc=spec.name, unit="epoch", disable=not (progress and main)):
        seed_epoch(cfg["seed"], epoch)
        generator = epoch_generator(cfg["seed"], epoch)
        order = torch.randperm(n, generator=generator)  # the same on every rank
        augment = (lambda x: augment_images(x, generator)) if do_augment else None  # noqa: E731
        method.train()
        sums: dict[str, float] = {}
        correct = 0
        for start in range(0, n, cfg["batch_size"]):
            index = order[start:start + cfg["batch_size"]]
            batch = make_batch(inputs, "train", index, keys, augment)
            if teacher_feed is not None:  # the teacher cache: outputs stored for this very batch
                batch["teachers"] = teacher_feed(epoch, start // cfg["batch_size"], index)
            if ddp is not None:  # the global batch (and its augmentation) on every rank, then a share
                correct += distributed_step(method, ddp, batch, optimizer, sums, ctx, spec.name, epoch)
                continue
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

        if ctx.active:
            # Every rank's weights are equal (same averaged gradients); BatchNorm's running
            # statistics are each rank's own: evaluate with rank 0's, as the checkpoint holds.
            distributed.broadcast_buffers(student)
            names = sorted(sums)
            totals = distributed.all_reduce_sum([correct, *(sums[k] for k in names)])
            correct, sums = totals[0], dict(zip(names, totals[1:]))
        acc = test_accuracy(student, inputs, spec.model_meta["input_key"], ctx=ctx)
        record = {f"{spec.name}_acc": acc, f"{spec.name}_train_acc": 100.0 * correct / n,
                  **{f"{spec.name}_loss_{k}": v / n for k, v in sums.items()},
                  f"{spec.name}_lr": optimizer.param_groups[0]["lr"]}
        # diagnostics, not losses (e.g. tgd_share_g1: teacher 2's share of the merged map)
        record.update({f"{spec.name}_{k}": v for k, v in method.diagnostics.epoch_means().items()})
        history.append(record)
        for metric, value in record.items():
            live.log_metric(metric, value)
        live.next_step()

        meta = {**spec.model_meta, "epoch": epoch + 1, "test_acc": acc, "fingerprint": spec.fingerprint}
        if acc > best_acc:
            best_acc = acc
            best = {"meta": meta, "state_dict": {k: v.detach().clone() for k, v in student.state_dict().items()}}
        if main:  # the plain student (never the DDP wrapper): no `module.` prefix in any file
            save_checkpoint(spec.out_dir / "last.pt", student, meta)
            if best["meta"] is meta:
                save_checkpoint(spec.out_dir / "best.pt", student, meta)
            atomic_save({"fingerprint": spec.fingerprint, "epoch": epoch, "history": history,
                         "best_acc": best_acc, "best": best, "last_meta": meta,
                         "method": method.state_dict(),
                         "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
                        resume_path)
        distributed.barrier()  # an epoch ends on every rank once rank 0 has saved it
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
            live.end()
            return {"stopped_after_epoch": epoch + 1}

    live.end()
    summary = {f"{spec.name}_acc": history[-1][f"{spec.name}_acc"], f"{spec.name}_best_acc": best_acc,
               f"{spec.name}_best_epoch": 1 + max(range(len(history)), key=lambda i: history[i][f"{spec.name}_acc"]),
               "epochs": cfg["epochs"]}
    if main:
        write_json(spec.out_dir / "summary.json", summary)
        resume_path.unlink(missing_ok=True)
    distributed.barrier()
    return summary
