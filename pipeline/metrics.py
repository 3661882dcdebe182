"""Metrics library: what a trained classifier scores and what it costs.

Pure functions: nothing here reads params, checkpoints or files. The classification and
calibration numbers come from torchmetrics and the multiply-accumulate count from PyTorch's own
flop counter; what no library offers in this form (accuracy under input noise, a batch-1 CPU
latency) is written here.

Conventions:
* models are called as ``model(x) -> (logits, [g1, g2, g3])``; a bare logits tensor is accepted;
* ``logits`` are float (N, C), labels ``y`` integer (N,);
* accuracies are percentages in [0, 100], the calibration error a fraction in [0, 1];
* results are JSON-serialisable (floats, ints, lists, ``None`` for undefined), never NaN.
"""
from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

Transform = Callable[[Tensor], Tensor]


def _torchmetrics():
    """torchmetrics' classification functions, imported on first use: importing torchmetrics
    loads torchvision too (seconds), which the export stage, a user of `predict`, never needs."""
    from torchmetrics.functional import classification

    return classification


def logits_of(output: Any) -> Tensor:
    """Logits from a model output: ``(logits, features)`` or a bare tensor."""
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    raise TypeError(f"model output must be a Tensor or (logits, features); got {type(output).__name__}")


def _check(logits: Tensor, y: Tensor, num_classes: int | None = None) -> None:
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (N, C); got {tuple(logits.shape)}")
    if y.ndim != 1 or y.shape[0] != logits.shape[0]:
        raise ValueError(f"labels must have shape ({logits.shape[0]},) to match logits; got {tuple(y.shape)}")
    if logits.shape[0] == 0:
        raise ValueError("cannot evaluate on an empty set (N = 0)")
    classes = logits.shape[1] if num_classes is None else num_classes
    if logits.shape[1] != classes:
        raise ValueError(f"logits have {logits.shape[1]} classes but num_classes = {classes}")
    if int(y.min()) < 0 or int(y.max()) >= classes:
        raise ValueError(f"labels must lie in [0, {classes - 1}]; got [{int(y.min())}, {int(y.max())}]")


# --------------------------------------------------------------------------- inference
@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 256, device: str | torch.device = "cpu",
            transform: Transform | None = None) -> Tensor:
    """Float32 logits (N, C) on the CPU of ``model`` on every row of ``x``, in eval mode.

    Each batch moves to ``device`` and passes through ``transform`` (e.g. the normaliser) there.
    The model is moved to ``device`` and its train/eval mode restored afterwards.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    if x.shape[0] == 0:
        raise ValueError("cannot predict on an empty input (N = 0)")
    was_training = model.training
    model.to(device).eval()
    try:
        outs = []
        for start in range(0, x.shape[0], batch_size):
            xb = x[start:start + batch_size].to(device, non_blocking=True)
            outs.append(logits_of(model(transform(xb) if transform else xb)).float().cpu())
        return torch.cat(outs)
    finally:
        model.train(was_training)


# --------------------------------------------------------------------------- classification
def topk_accuracy(logits: Tensor, y: Tensor, k: int = 1) -> float:
    """Top-``k`` accuracy in percent (torchmetrics, micro average)."""
    _check(logits, y)
    if not 1 <= k <= logits.shape[1]:
        raise ValueError(f"k must lie in [1, {logits.shape[1]}] (number of classes); got {k}")
    return 100.0 * _torchmetrics().multiclass_accuracy(logits, y, logits.shape[1], top_k=k, average="micro").item()


def confusion_matrix(logits: Tensor, y: Tensor, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts: rows = true label, columns = predicted label."""
    _check(logits, y, num_classes)
    return _torchmetrics().multiclass_confusion_matrix(logits, y, num_classes).numpy().astype(np.int64)


def per_class_accuracy(logits: Tensor, y: Tensor, num_classes: int) -> list[float | None]:
    """Accuracy (recall) in percent of each true class; ``None`` for a class without samples
    (torchmetrics reports 0 there, which would read as a class never recognised)."""
    _check(logits, y, num_classes)
    recall = _torchmetrics().multiclass_accuracy(logits, y, num_classes, average=None)
    support = torch.bincount(y, minlength=num_classes)
    return [100.0 * float(r) if n else None for r, n in zip(recall, support)]


# --------------------------------------------------------------------------- calibration
def calibration_error(logits: Tensor, y: Tensor, n_bins: int = 15) -> float:
    """Expected calibration error in [0, 1] over ``n_bins`` equal-width confidence bins
    (torchmetrics, L1 norm: softmax in float64, bins summed in float32)."""
    _check(logits, y)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1; got {n_bins}")
    return float(_torchmetrics().multiclass_calibration_error(logits.double(), y, logits.shape[1], n_bins=n_bins))


def reliability_bins(logits: Tensor, y: Tensor, n_bins: int = 15) -> dict[str, list]:
    """The bins behind :func:`calibration_error`, for a reliability diagram.

    Bin ``b`` holds confidences in ``[edges[b], edges[b+1])``, the last bin also 1.0 itself.
    Returns ``{"edges", "confidence", "accuracy" (fraction correct), "count"}``, ``None`` for
    the means of an empty bin. The count-weighted mean of ``|accuracy - confidence|`` is the
    calibration error, except when some confidence is exactly 1.0: torchmetrics keeps those in
    a bin of their own, which a diagram has no room for.
    """
    # the binning behind torchmetrics' calibration error (no public function gives the bins)
    from torchmetrics.functional.classification.calibration_error import _binning_bucketize

    _check(logits, y)
    confidence, predicted = torch.softmax(logits.double(), dim=1).max(dim=1)
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    accuracy, mean_conf, share = _binning_bucketize(confidence, (predicted == y).double(), edges)
    count = (share * len(y)).round()
    sums = [accuracy * count, mean_conf * count]
    for values in [count, *sums]:  # fold the exact-1.0 bin into the last one
        values[-2] += values[-1]
    count, (accuracy, mean_conf) = count[:-1], [v[:-1] / count[:-1].clamp(min=1) for v in sums]
    return {"edges": edges.tolist(), "count": [int(n) for n in count],
            "confidence": [float(c) if n else None for c, n in zip(mean_conf, count)],
            "accuracy": [float(a) if n else None for a, n in zip(accuracy, count)]}


# --------------------------------------------------------------------------- robustness
@torch.no_grad()
def noise_robustness(model: nn.Module, x01: Tensor, y: Tensor, stds: Sequence[float],
                     transform: Transform | None = None, seed: int = 0, batch_size: int = 256,
                     device: str | torch.device = "cpu", clamp: bool = True) -> dict[str, float]:
    """Top-1 accuracy (%) under additive Gaussian noise, ``{str(float(std)): accuracy}``.

    ``x01`` holds inputs on [0, 1]; per std: ``x01 + N(0, std)``, clamped to [0, 1] when
    ``clamp`` (images), then ``transform`` and the model. The noise is drawn on the CPU from a
    fresh generator seeded with ``seed`` per std, so a result depends neither on the device nor
    on the other stds; std 0 adds nothing (the clean accuracy).
    """
    if x01.shape[0] != y.shape[0] or x01.shape[0] == 0:
        raise ValueError(f"need as many labels as inputs, at least one: {x01.shape[0]} inputs, {y.shape[0]} labels")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    for std in stds:
        if not (math.isfinite(float(std)) and float(std) >= 0):
            raise ValueError(f"noise std must be a finite number >= 0; got {std!r}")
    result: dict[str, float] = {}
    for std in map(float, stds):
        generator = torch.Generator(device="cpu").manual_seed(int(seed))

        def noisy(xb: Tensor, std: float = std) -> Tensor:
            xb = xb.cpu().float()
            if std > 0:
                xb = xb + std * torch.randn(xb.shape, generator=generator, dtype=xb.dtype)
                xb = xb.clamp_(0.0, 1.0) if clamp else xb
            xb = xb.to(device)
            return transform(xb) if transform else xb

        logits = predict(model, x01, batch_size, device, transform=noisy)
        result[str(std)] = 100.0 * int((logits.argmax(1) == y.cpu()).sum()) / x01.shape[0]
    return result


# --------------------------------------------------------------------------- cost
def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (all, or those with ``requires_grad``); buffers are not
    counted, shared parameters once."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only))


@torch.no_grad()
def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass on one input of ``input_shape`` (no batch dim).

    PyTorch's ``FlopCounterMode`` counts 2 FLOPs per multiply-accumulate of convolutions and
    matrix products (bias additions, norms, activations and pooling are not counted), so the
    MACs are half its total. The model runs once in eval mode on zeros; its mode is restored.
    """
    device = next(iter([*model.parameters(), *model.buffers()]), torch.zeros(0)).device
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros((1, *input_shape), device=device))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops()) // 2


@torch.no_grad()
def cpu_latency_ms(model: nn.Module, input_shape: tuple[int, ...], repeats: int = 20,
                   warmup: int = 3, threads: int = 1) -> float:
    """Median milliseconds of one forward pass on one input (batch 1) on the CPU with
    ``threads`` intra-op threads (restored afterwards); runs on a copy of the model."""
    if repeats < 1 or warmup < 0 or threads < 1:
        raise ValueError(f"need repeats >= 1, warmup >= 0, threads >= 1; got {repeats}, {warmup}, {threads}")
    net = copy.deepcopy(model).cpu().eval()
    x = torch.zeros((1, *input_shape))
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return median_ms(lambda: net(x), repeats, warmup)
    finally:
        torch.set_num_threads(previous)


def median_ms(call: Callable[[], Any], repeats: int, warmup: int) -> float:
    """Median wall-clock milliseconds of ``call()`` over ``repeats`` runs after ``warmup``."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000.0)
    return float(statistics.median(times))
