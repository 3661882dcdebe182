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

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from pipeline import distributed
from pipeline.checkpoint import save_checkpoint
from pipeline.distill import Method
from pipeline.errors import PipelineError
from pipeline.inputs import Inputs
from pipeline.runtime import seed_epoch
from pipeline.store import write_json
from pipeline.training.batches import TeacherFeed, epoch_batches
from pipeline.training.params import TrainParams
from pipeline.training.resume import restore, save_resume
from pipeline.training.state import Progress, RunSpec, Trainer


class TrainingError(PipelineError, FloatingPointError):
    """Training diverged (non-finite loss): fixable by params, reported as one line."""


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


def train_step(method: Method, ddp: nn.Module | None, batch: dict[str, Tensor],
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


def train_epoch(trainer: Trainer, epoch: int) -> tuple[int, dict[str, float], dict[str, float]]:
    """One pass over the training split: (correct, loss sums, diagnostic sums) over all ranks."""
    seed_epoch(trainer.train.seed, epoch)
    trainer.method.start_epoch(epoch)
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
    train = trainer.train
    batches = epoch_batches(trainer.inputs, train.seed, epoch, train.batch_size, trainer.method.inputs,
                            train.augment, trainer.teacher_feed)
    for number, batch in enumerate(batches, 1):
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


def make_trainer(method: Method, inputs: Inputs, train: TrainParams, spec: RunSpec,
                 device: torch.device, teacher_feed: TeacherFeed | None = None) -> Trainer:
    optimizer = make_optimizer(list(method.student_parameters()), train)
    return Trainer(method, inputs, train, spec, distributed.context(),
                   distributed.wrap(method.student, device), optimizer,
                   make_scheduler(optimizer, train), teacher_feed)


def fit(method: Method, inputs: Inputs, train: TrainParams, spec: RunSpec,
        device: torch.device, teacher_feed: TeacherFeed | None = None) -> dict[str, Any]:
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
