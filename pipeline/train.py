"""One training loop for every model: teachers, the scratch student and distilled students.

The loop drives a distillation `Method` (pipeline.distill): the method returns the student's
logits and a dict of named, already weighted losses; the loop sums them, steps the optimiser,
and logs each name per epoch with DVCLive (diagnostics the method reports are logged beside
them, never summed).

    fit = restore (a resume file, if one belongs to this run)
          -> per epoch: train_epoch, evaluate, save_epoch (checkpoints, logs, resume file)
          -> finish (summary.json, the resume file removed)

Reproducible and resumable: shuffling and augmentation draw from a generator seeded by
(seed, epoch), and the global RNGs are re-seeded from (seed, epoch) at the start of every epoch
(pipeline.runtime), so an epoch does not depend on how earlier epochs ran; after each epoch the
whole state is saved atomically, with a checksum, to a resume file outside the stage's outputs.
A killed stage restarts from its last finished epoch, rewrites the checkpoints DVC deleted
meanwhile, and ends with the same weights, checkpoints and logs as an uninterrupted CPU run.

Under torchrun (pipeline.distributed) every rank runs the same loop: a single process is the
world-size-1 case of the data-parallel step, and only rank 0 writes files.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from pipeline import distributed
from pipeline.checkpoint import atomic_save, save_checkpoint, state_digest
from pipeline.errors import CheckpointError, PipelineError
from pipeline.inputs import Inputs, to_unit
from pipeline.params import TrainParams
from pipeline.runtime import epoch_generator, fingerprint, seed_epoch
from pipeline.store import write_json

# What a resume file holds besides its fingerprint and checksum.
RESUME_KEYS = ("epoch", "history", "best_acc", "best", "last_meta", "method", "optimizer", "scheduler")


class TrainingError(PipelineError, FloatingPointError):
    """Training diverged (non-finite loss): fixable by params, reported as one line."""


@dataclass
class RunSpec:
    """Who is trained and where its artifacts go."""

    name: str                    # scratch, kd, tgd, teacher_image, ... (lands in metric names)
    model_meta: dict[str, Any]   # arch, in_channels, num_classes, dims, input_key
    out_dir: Path                # last.pt, best.pt, summary.json
    live_dir: Path               # DVCLive metrics.json and per-epoch plots
    resume_path: Path            # the resume file, outside the stage's outputs
    fingerprint: str             # identity of the run (params, architecture, inputs)

    @property
    def resume_fingerprint(self) -> str:
        """A resume file must match this: the run's identity and its name."""
        return fingerprint(self.name, self.fingerprint)


@dataclass
class Progress:
    """What the finished epochs left: restored from a resume file or built epoch by epoch."""

    next_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_acc: float = -1.0
    best: dict[str, Any] | None = None       # the best epoch's {"meta", "state_dict"}
    last_meta: dict[str, Any] | None = None


@dataclass
class Trainer:
    """A run's moving parts: the method, its inputs, the optimiser and the process group."""

    method: nn.Module
    inputs: Inputs
    train: TrainParams
    spec: RunSpec
    ctx: distributed.Context
    ddp: nn.Module | None            # the student in DistributedDataParallel; None alone
    optimizer: torch.optim.Optimizer
    scheduler: Any
    # the teacher cache (pipeline.teacher_cache): feed(epoch, step, index) -> the batch's stored
    # teacher outputs, put in batch["teachers"]; None: the method runs its teachers
    teacher_feed: Callable[[int, int, Tensor], Any] | None = None

    @property
    def main(self) -> bool:
        return self.ctx.is_main


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


def make_optimizer(parameters, train: TrainParams) -> torch.optim.Optimizer:
    if train.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=train.lr, weight_decay=train.weight_decay)
    return torch.optim.SGD(parameters, lr=train.lr, momentum=train.momentum,
                           weight_decay=train.weight_decay, nesterov=train.momentum > 0)


def make_scheduler(optimizer: torch.optim.Optimizer, train: TrainParams):
    if train.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=train.epochs)
    if train.schedule == "step":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, train.milestones, gamma=train.lr_decay)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


def make_batch(inputs: Inputs, split: str, index: Tensor, keys: tuple[str, ...],
               augment: Callable[[Tensor], Tensor] | None = None) -> dict[str, Tensor]:
    """Labels, sample indices (`index`, positions in the split) and the inputs `keys`."""
    tensors = inputs.splits[split]
    batch = {"y": tensors["y"][index], "index": index}
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


# Steps between the loop's reads of the step results: on a GPU a read waits for every queued
# kernel, so reading each step's loss would stop the host from running ahead of the device.
SYNC_EVERY = 50


@dataclass
class StepResult:
    """One optimiser step's contribution to the epoch's sums (this rank's share), as tensors on
    the training device; the loop adds them up there and reads them every SYNC_EVERY steps."""

    correct: Tensor
    losses: dict[str, Tensor]        # each named loss times the share's size
    diagnostics: dict[str, Tensor]   # each diagnostic times the share's size
    nonfinite: Tensor                # 1 when the share's loss was NaN or infinite, else 0


def train_step(method: nn.Module, ddp: nn.Module | None, batch: dict[str, Tensor],
               optimizer: torch.optim.Optimizer, ctx: distributed.Context = distributed.SINGLE) -> StepResult:
    """One optimiser step on this rank's share of the global batch `batch` (all of it alone).

    The share's mean loss is weighted by `len(share) * world_size / len(batch)`: DDP averages
    the ranks' gradients, so the result is the gradient of the global batch's mean loss (weight
    1 in a single process). A rank whose share is empty (a last batch smaller than the world)
    runs one sample with weight 0, so that every rank takes part in DDP's gradient all-reduce.
    Nothing here waits for the device: a non-finite loss is flagged in the result, and the loop
    stops the run at its next check (`check_finite`).
    """
    n = len(batch["y"])
    part = distributed.share(n, ctx)
    size = part.stop - part.start
    local = {k: v[part] if size else v[n - 1:] for k, v in batch.items()}
    with distributed.student_wrapped(method, ddp):
        logits, losses = method(local)
    diagnostics = method.pop_diagnostics()
    loss = sum(losses.values())
    weight = size * ctx.world_size / n
    optimizer.zero_grad(set_to_none=True)
    (loss if weight == 1.0 else loss * weight).backward()
    optimizer.step()
    with torch.no_grad():
        zero = torch.zeros((), device=logits.device)
        return StepResult(
            correct=(logits.argmax(1) == local["y"]).sum() if size else zero,
            losses={k: v.detach() * size if size else zero for k, v in losses.items()},
            diagnostics={k: torch.as_tensor(v, device=logits.device) * size if size else zero
                         for k, v in diagnostics.items()},
            nonfinite=(~torch.isfinite(loss.detach())).float() if size else zero)


def check_finite(nonfinite: Tensor | float, where: str, ctx: distributed.Context) -> None:
    """Stop the run (on every rank) when any step since the run began had a non-finite loss."""
    bad = distributed.all_reduce_sum([float(nonfinite)])[0]
    if bad:
        ranks = f" on {ctx.world_size} ranks" if ctx.active else ""
        raise TrainingError(f"{where}: loss became non-finite ({int(bad)} steps{ranks}); lower "
                            "train.lr or the distill weights")


def _add(sums: dict[str, Tensor], part: dict[str, Tensor]) -> None:
    for key, value in part.items():
        sums[key] = sums[key] + value if key in sums else value


def _epoch_batches(trainer: Trainer, epoch: int):
    """The epoch's global batches, in the order of its seeded permutation (the same on every
    rank), augmented when asked."""
    train, inputs = trainer.train, trainer.inputs
    generator = epoch_generator(train.seed, epoch)
    n = len(inputs.splits["train"]["y"])
    order = torch.randperm(n, generator=generator)
    do_augment = train.augment and inputs.modality == "image"
    augment = (lambda x: augment_images(x, generator)) if do_augment else None  # noqa: E731
    for start in range(0, n, train.batch_size):
        batch = make_batch(inputs, "train", order[start:start + train.batch_size],
                           trainer.method.inputs, augment)
        if trainer.teacher_feed is not None:  # the teachers' outputs stored for this very batch
            batch["teachers"] = trainer.teacher_feed(epoch, start // train.batch_size, batch["index"])
        yield batch


def train_epoch(trainer: Trainer, epoch: int) -> tuple[int, dict[str, float], dict[str, float]]:
    """One pass over the training split: (correct, loss sums, diagnostic sums) over all ranks."""
    seed_epoch(trainer.train.seed, epoch)
    trainer.method.train()
    sums: dict[str, Tensor] = {}
    diagnostics: dict[str, Tensor] = {}
    correct: Tensor | int = 0
    nonfinite: Tensor | float = 0.0
    seen = 0
    where = f"{trainer.spec.name} at epoch {epoch + 1}"
    n = len(trainer.inputs.splits["train"]["y"])
    bar = tqdm(total=-(-n // trainer.train.batch_size), unit="step", leave=False,
               desc=f"{trainer.spec.name} epoch {epoch + 1}/{trainer.train.epochs}",
               disable=True if not trainer.main else None)
    for number, batch in enumerate(_epoch_batches(trainer, epoch), 1):
        step = train_step(trainer.method, trainer.ddp, batch, trainer.optimizer, trainer.ctx)
        correct = correct + step.correct
        nonfinite = nonfinite + step.nonfinite
        _add(sums, step.losses)
        _add(diagnostics, step.diagnostics)
        seen += len(batch["y"])
        bar.update()
        if number % SYNC_EVERY == 0:
            check_finite(nonfinite, where, trainer.ctx)
            bar.set_postfix(loss=f"{float(sum(sums.values())) / seen * trainer.ctx.world_size:.4f}",
                            refresh=False)
    check_finite(nonfinite, where, trainer.ctx)
    bar.close()
    trainer.scheduler.step()
    return _summed_over_ranks(trainer, int(correct), {k: float(v) for k, v in sums.items()},
                              {k: float(v) for k, v in diagnostics.items()})


def _summed_over_ranks(trainer: Trainer, correct: int, sums: dict[str, float],
                       diagnostics: dict[str, float]):
    if not trainer.ctx.active:
        return correct, sums, diagnostics
    # Every rank's weights are equal (same averaged gradients); BatchNorm's running statistics
    # are each rank's own: evaluate with rank 0's, as the checkpoint holds.
    distributed.broadcast_buffers(trainer.method.student)
    names, diag = sorted(sums), sorted(diagnostics)
    totals = distributed.all_reduce_sum([correct, *(sums[k] for k in names),
                                         *(diagnostics[k] for k in diag)])
    return (totals[0], dict(zip(names, totals[1:1 + len(names)])),
            dict(zip(diag, totals[1 + len(names):])))


def epoch_record(trainer: Trainer, correct: int, sums: dict[str, float],
                 diagnostics: dict[str, float], acc: float) -> dict[str, float]:
    """The numbers logged for one epoch, named `<model>_<what>`."""
    name = trainer.spec.name
    n = len(trainer.inputs.splits["train"]["y"])
    return {f"{name}_acc": acc, f"{name}_train_acc": 100.0 * correct / n,
            **{f"{name}_loss_{k}": v / n for k, v in sums.items()},
            f"{name}_lr": trainer.optimizer.param_groups[0]["lr"],
            **{f"{name}_{k}": v / n for k, v in diagnostics.items()}}


# -- the resume file ---------------------------------------------------------------------------

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


# -- the loop ----------------------------------------------------------------------------------

def _open_live(trainer: Trainer, history: list[dict[str, float]]):
    if not trainer.main:
        return distributed.NullLive()
    from dvclive import Live

    # dvcyaml=False: never rewrite dvc.yaml from inside a stage; no experiment saving either.
    live = Live(str(trainer.spec.live_dir), dvcyaml=False, save_dvc_exp=False, report=None)
    for past in history:  # DVC cleared the live folder: replay the finished epochs' logs
        log_epoch(live, past)
    return live


def log_epoch(live, record: dict[str, float]) -> None:
    for metric, value in record.items():
        live.log_metric(metric, value)
    live.next_step()


def save_epoch(trainer: Trainer, progress: Progress, epoch: int, acc: float) -> None:
    """After an epoch: the best weights so far, `last.pt`, `best.pt` and the resume file."""
    spec, student = trainer.spec, trainer.method.student
    meta = {**spec.model_meta, "epoch": epoch + 1, "test_acc": acc, "fingerprint": spec.fingerprint}
    progress.next_epoch, progress.last_meta = epoch + 1, meta
    if acc > progress.best_acc:
        progress.best_acc = acc
        progress.best = {"meta": meta, "state_dict": {k: v.detach().clone()
                                                      for k, v in student.state_dict().items()}}
    if trainer.main:  # the plain student (never the DDP wrapper): no `module.` prefix in any file
        save_checkpoint(spec.out_dir / "last.pt", student, meta)
        if progress.best["meta"] is meta:
            save_checkpoint(spec.out_dir / "best.pt", student, meta)
        save_resume(trainer, progress)
    distributed.barrier()  # an epoch ends on every rank once rank 0 has saved it


def summarize(spec: RunSpec, progress: Progress, epochs: int) -> dict[str, Any]:
    accs = [record[f"{spec.name}_acc"] for record in progress.history]
    return {f"{spec.name}_acc": accs[-1], f"{spec.name}_best_acc": progress.best_acc,
            f"{spec.name}_best_epoch": 1 + max(range(len(accs)), key=lambda i: accs[i]),
            "epochs": epochs}


def describe(summary: dict[str, Any], name: str) -> str:
    """One line for people: `scratch: 5 epochs, test accuracy 93.06 % (best 94.17 % at epoch 4)`."""
    return (f"{name}: {summary['epochs']} epochs, test accuracy {summary[f'{name}_acc']:.2f} % "
            f"(best {summary[f'{name}_best_acc']:.2f} % at epoch {summary[f'{name}_best_epoch']})")


def finish(trainer: Trainer, progress: Progress) -> dict[str, Any]:
    summary = summarize(trainer.spec, progress, trainer.train.epochs)
    if trainer.main:
        write_json(trainer.spec.out_dir / "summary.json", summary)
        trainer.spec.resume_path.unlink(missing_ok=True)
    distributed.barrier()
    return summary


def make_trainer(method: nn.Module, inputs: Inputs, train: TrainParams, spec: RunSpec,
                 device: torch.device, teacher_feed: Callable | None = None) -> Trainer:
    optimizer = make_optimizer(list(method.student_parameters()), train)
    return Trainer(method, inputs, train, spec, distributed.context(),
                   distributed.wrap(method.student, device), optimizer,
                   make_scheduler(optimizer, train), teacher_feed)


def fit(method: nn.Module, inputs: Inputs, train: TrainParams, spec: RunSpec,
        device: torch.device, teacher_feed: Callable | None = None) -> dict[str, Any]:
    """Train `method.student` for `train.epochs` epochs; write checkpoints, live logs and the
    summary. Under torchrun every rank calls it (DDP; rank 0 writes). `teacher_feed`: the
    teacher cache's outputs per batch (pipeline.teacher_cache), read instead of the teachers."""
    trainer = make_trainer(method, inputs, train, spec, device, teacher_feed)
    progress = restore(trainer)
    live = _open_live(trainer, progress.history)
    for epoch in range(progress.next_epoch, train.epochs):
        correct, sums, diagnostics = train_epoch(trainer, epoch)
        acc = test_accuracy(method.student, inputs, spec.model_meta["input_key"], ctx=trainer.ctx)
        record = epoch_record(trainer, correct, sums, diagnostics, acc)
        progress.history.append(record)
        log_epoch(live, record)
        save_epoch(trainer, progress, epoch, acc)
        if trainer.main:
            tqdm.write(f"{spec.name} epoch {epoch + 1}/{train.epochs}: test accuracy {acc:.2f} %, "
                       f"train accuracy {record[f'{spec.name}_train_acc']:.2f} %")
    live.end()
    return finish(trainer, progress)
