"""Evaluation library: accuracy, calibration, robustness, cost and reporting.

Pure functions only: nothing here reads params, checkpoints or data from disk.
The evaluate stage loads the models and data and calls these.

Conventions
-----------
* Models are called as ``model(x) -> (logits, [g1, g2, g3])``; only the logits
  (first element) are used. A model returning a bare tensor is accepted too.
* ``logits`` are float tensors of shape (N, C); labels ``y`` are integer
  tensors of shape (N,).
* Accuracies are percentages in [0, 100]; ECE is a fraction in [0, 1].
* Everything that ends up in a metrics file is JSON-serialisable (Python
  floats, ints, lists, dicts, ``None`` for undefined values such as the
  accuracy of a class with no samples), never tensors or NaN.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pipeline.errors import ParamsError

Transform = Callable[[Tensor], Tensor]

__all__ = [
    "predict",
    "topk_accuracy",
    "per_class_accuracy",
    "confusion_matrix",
    "calibration_bins",
    "expected_calibration_error",
    "noise_robustness",
    "count_parameters",
    "count_macs",
    "cpu_latency_ms",
    "plot_confusion_matrix",
    "plot_reliability",
    "comparison_table",
    "evaluate_model",
]


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
def _logits_of(output: Any) -> Tensor:
    """Logits from a model output: ``(logits, feats)`` or a bare tensor."""
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    raise TypeError(
        f"model output must be a Tensor or (logits, features); got {type(output).__name__}"
    )


def _check_logits_labels(logits: Tensor, y: Tensor) -> None:
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (N, C); got {tuple(logits.shape)}")
    if y.ndim != 1 or y.shape[0] != logits.shape[0]:
        raise ValueError(
            f"labels must have shape ({logits.shape[0]},) to match logits; got {tuple(y.shape)}"
        )
    if logits.shape[0] == 0:
        raise ValueError("cannot evaluate on an empty set (N = 0)")


def _check_labels_range(y: Tensor, num_classes: int) -> None:
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1; got {num_classes}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes - 1}]; got range "
            f"[{int(y.min())}, {int(y.max())}]"
        )


def _std_key(std: float) -> str:
    """Key of a noise level in result dicts: ``str(float(std))``, e.g. '0.0', '0.05'."""
    return str(float(std))


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


# --------------------------------------------------------------------------- #
# inference
# --------------------------------------------------------------------------- #
@torch.no_grad()
def predict(
    model: nn.Module,
    x: Tensor,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    transform: Transform | None = None,
) -> Tensor:
    """Logits of ``model`` on every row of ``x``, in eval mode, without gradients.

    ``x`` (N, ...) stays where it is; each batch of ``batch_size`` rows is moved
    to ``device`` and passed through ``transform`` (if given, e.g. the stage's
    normaliser raw -> normalised float) on that device before the model. The
    model is moved to ``device`` (``nn.Module.to`` is in-place) and its previous
    train/eval mode is restored afterwards.

    Returns float32 logits (N, C) on the CPU.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    if x.shape[0] == 0:
        raise ValueError("cannot predict on an empty input (N = 0)")
    was_training = model.training
    model.to(device)
    model.eval()
    try:
        outs = []
        for start in range(0, x.shape[0], batch_size):
            xb = x[start : start + batch_size].to(device, non_blocking=True)
            if transform is not None:
                xb = transform(xb)
            outs.append(_logits_of(model(xb)).float().cpu())
        return torch.cat(outs)
    finally:
        model.train(was_training)


# --------------------------------------------------------------------------- #
# classification metrics
# --------------------------------------------------------------------------- #
def topk_accuracy(logits: Tensor, y: Tensor, k: int = 1) -> float:
    """Top-``k`` accuracy in percent: a sample counts if its label is among the
    ``k`` largest logits. Ties are broken by ``torch.topk``."""
    _check_logits_labels(logits, y)
    if not 1 <= k <= logits.shape[1]:
        raise ValueError(f"k must lie in [1, {logits.shape[1]}] (number of classes); got {k}")
    top = logits.topk(k, dim=1).indices  # (N, k)
    hit = (top == y.to(top.device).view(-1, 1)).any(dim=1)
    return 100.0 * hit.float().mean().item()


def confusion_matrix(logits: Tensor, y: Tensor, num_classes: int) -> np.ndarray:
    """Confusion matrix (num_classes, num_classes) int64: rows = true label,
    columns = predicted label (argmax of logits)."""
    _check_logits_labels(logits, y)
    _check_labels_range(y, num_classes)
    if logits.shape[1] != num_classes:
        raise ValueError(
            f"logits have {logits.shape[1]} classes but num_classes = {num_classes}"
        )
    pred = logits.argmax(dim=1).cpu().numpy().astype(np.int64)
    true = y.cpu().numpy().astype(np.int64)
    flat = np.bincount(true * num_classes + pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def per_class_accuracy(logits: Tensor, y: Tensor, num_classes: int) -> list[float | None]:
    """Accuracy in percent of each true class (recall); ``None`` for a class
    without samples (keeps the result JSON-serialisable, unlike NaN)."""
    cm = confusion_matrix(logits, y, num_classes)
    support = cm.sum(axis=1)
    return [
        100.0 * float(cm[c, c]) / float(support[c]) if support[c] > 0 else None
        for c in range(num_classes)
    ]


# --------------------------------------------------------------------------- #
# calibration
# --------------------------------------------------------------------------- #
def calibration_bins(logits: Tensor, y: Tensor, n_bins: int = 15) -> dict[str, list]:
    """Reliability-diagram data with equal-width confidence bins (Guo et al. 2017).

    Confidence = max softmax probability, correct = argmax == label. Bin ``b``
    holds the samples with confidence in ``(edges[b], edges[b+1]]`` (the first
    bin also includes 0). Returns a JSON-serialisable dict::

        {"edges": [n_bins + 1 floats], "confidence": [mean confidence per bin],
         "accuracy": [fraction correct per bin, in [0, 1]], "count": [ints]}

    with ``None`` for the confidence/accuracy of empty bins.
    """
    _check_logits_labels(logits, y)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1; got {n_bins}")
    probs = torch.softmax(logits.double(), dim=1)
    conf, pred = probs.max(dim=1)
    correct = (pred == y.to(pred.device)).double()
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64)
    # bucketize(right=False) gives i with edges[i-1] < conf <= edges[i]
    idx = torch.bucketize(conf.cpu(), edges, right=False) - 1
    idx = idx.clamp(0, n_bins - 1)  # conf == 0 (impossible for softmax) -> first bin
    count = torch.bincount(idx, minlength=n_bins)
    conf_sum = torch.bincount(idx, weights=conf.cpu(), minlength=n_bins)
    corr_sum = torch.bincount(idx, weights=correct.cpu(), minlength=n_bins)
    out_conf: list[float | None] = []
    out_acc: list[float | None] = []
    for b in range(n_bins):
        n = int(count[b])
        out_conf.append(float(conf_sum[b]) / n if n else None)
        out_acc.append(float(corr_sum[b]) / n if n else None)
    return {
        "edges": [float(e) for e in edges],
        "confidence": out_conf,
        "accuracy": out_acc,
        "count": [int(c) for c in count],
    }


def _ece_from_bins(bins: Mapping[str, list]) -> float:
    total = sum(bins["count"])
    if total == 0:
        raise ValueError("calibration bins are empty")
    ece = 0.0
    for n, c, a in zip(bins["count"], bins["confidence"], bins["accuracy"]):
        if n:
            ece += n / total * abs(a - c)
    return float(ece)


def expected_calibration_error(logits: Tensor, y: Tensor, n_bins: int = 15) -> float:
    """Expected calibration error in [0, 1] (Guo et al. 2017):
    ``sum_b |B_b|/N * |acc(B_b) - conf(B_b)|`` over ``n_bins`` equal-width
    confidence bins (see :func:`calibration_bins`)."""
    return _ece_from_bins(calibration_bins(logits, y, n_bins))


# --------------------------------------------------------------------------- #
# robustness
# --------------------------------------------------------------------------- #
@torch.no_grad()
def noise_robustness(
    model: nn.Module,
    x01: Tensor,
    y: Tensor,
    stds: Sequence[float],
    transform: Transform | None = None,
    seed: int = 0,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    clamp: bool = True,
) -> dict[str, float]:
    """Top-1 accuracy (%) under additive Gaussian noise, one entry per std.

    ``x01`` holds inputs scaled to [0, 1] (any layout; noise is elementwise).
    For each ``std``: ``x = x01 + N(0, std)``, clamped to [0, 1] if ``clamp``
    (images; pass ``clamp=False`` for signals), then ``transform`` (the
    normaliser) and the model. The noise is drawn on the CPU from a fresh
    ``torch.Generator().manual_seed(seed)`` per std, batch by batch, so results
    are reproducible and independent of ``device`` and of the other stds.
    ``std == 0`` adds no noise (equals clean accuracy).

    Returns ``{str(float(std)): accuracy %}``, e.g. ``{"0.0": 91.2, "0.1": 80.3}``.
    """
    if x01.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x01.shape[0]} rows but y has {y.shape[0]}")
    if x01.shape[0] == 0:
        raise ValueError("cannot evaluate on an empty set (N = 0)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    for std in stds:
        if not (math.isfinite(float(std)) and float(std) >= 0):
            raise ValueError(f"noise std must be a finite number >= 0; got {std!r}")
    was_training = model.training
    model.to(device)
    model.eval()
    y_cpu = y.cpu()
    result: dict[str, float] = {}
    try:
        for std in stds:
            std = float(std)
            gen = torch.Generator(device="cpu").manual_seed(int(seed))
            correct = 0
            for start in range(0, x01.shape[0], batch_size):
                xb = x01[start : start + batch_size].cpu().float()
                if std > 0:
                    xb = xb + std * torch.randn(xb.shape, generator=gen, dtype=xb.dtype)
                    if clamp:
                        xb = xb.clamp_(0.0, 1.0)
                xb = xb.to(device)
                if transform is not None:
                    xb = transform(xb)
                pred = _logits_of(model(xb)).argmax(dim=1).cpu()
                correct += int((pred == y_cpu[start : start + batch_size]).sum())
            result[_std_key(std)] = 100.0 * correct / x01.shape[0]
    finally:
        model.train(was_training)
    return result


# --------------------------------------------------------------------------- #
# cost
# --------------------------------------------------------------------------- #
def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (all, or only those with ``requires_grad``).
    Shared parameters are counted once."""
    return int(
        sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
    )


_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


@torch.no_grad()
def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass on a single input of
    ``input_shape`` (without batch dim, e.g. (3, 32, 32) or (6, 100)).

    Counted with forward hooks on Conv1d/2d/3d and Linear (a module called
    twice is counted twice); biases, norms, activations and pooling are free:

    * conv:   output elements x in_channels/groups x prod(kernel_size)
    * linear: output elements x in_features (= in x out for a plain vector)

    The model runs once in eval mode on zeros on its own device; its mode is
    restored afterwards.
    """
    total = 0

    def hook(module: nn.Module, _inp: Any, out: Tensor) -> None:
        nonlocal total
        out_elems = out.numel() // out.shape[0]  # per sample
        if isinstance(module, _CONV):
            k = math.prod(module.kernel_size)
            total += out_elems * (module.in_channels // module.groups) * k
        else:  # Linear
            total += out_elems * module.in_features

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (*_CONV, nn.Linear))
    ]
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros((1, *input_shape), device=_model_device(model))
        model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return int(total)


@torch.no_grad()
def cpu_latency_ms(
    model: nn.Module,
    input_shape: tuple[int, ...],
    repeats: int = 20,
    warmup: int = 3,
    threads: int = 1,
) -> float:
    """Median wall-clock milliseconds of one forward pass of a single input
    (batch 1) of ``input_shape`` on the CPU, eval mode, ``threads`` intra-op
    threads (the previous thread count is restored).

    Runs on a deep copy of the model, so the caller's model is not moved off
    its device nor switched to eval mode.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1; got {repeats}")
    if warmup < 0 or threads < 1:
        raise ValueError(f"need warmup >= 0 and threads >= 1; got {warmup}, {threads}")
    net = copy.deepcopy(model).cpu().eval()
    x = torch.zeros((1, *input_shape))
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for _ in range(warmup):
            net(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            net(x)
            times.append((time.perf_counter() - t0) * 1000.0)
    finally:
        torch.set_num_threads(prev_threads)
    return float(statistics.median(times))


# --------------------------------------------------------------------------- #
# plots (Agg canvas, no pyplot global state)
# --------------------------------------------------------------------------- #
def _new_figure(figsize: tuple[float, float]):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=100)
    FigureCanvasAgg(fig)
    return fig


def plot_confusion_matrix(
    cm: np.ndarray | Sequence[Sequence[int]],
    classes: Sequence[str],
    path: str | Path,
    title: str = "",
    max_labels: int = 30,
) -> Path:
    """Write the confusion matrix as a PNG (rows true, columns predicted),
    colour = row-normalised fraction. With <= ``max_labels`` classes the axes
    carry class names and cells with counts are annotated; beyond that (e.g.
    200 classes) ticks and annotations are dropped. Creates parent dirs;
    returns the path."""
    cm = np.asarray(cm, dtype=np.int64)
    n = cm.shape[0]
    if cm.ndim != 2 or cm.shape[1] != n:
        raise ValueError(f"confusion matrix must be square; got shape {cm.shape}")
    if len(classes) != n:
        raise ValueError(f"{len(classes)} class names for a {n}x{n} confusion matrix")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    support = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, support, out=np.zeros(cm.shape, dtype=float), where=support > 0)
    labelled = n <= max_labels
    side = min(4.0 + 0.45 * n, 14.0) if labelled else 10.0
    fig = _new_figure((side + 1.5, side))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    if labelled:
        ticks = np.arange(n)
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        ax.set_xticklabels([str(c) for c in classes], rotation=45, ha="right")
        ax.set_yticklabels([str(c) for c in classes])
        fontsize = 9 if n <= 12 else 6
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(
                        j, i, str(cm[i, j]), ha="center", va="center", fontsize=fontsize,
                        color="white" if frac[i, j] > 0.5 else "black",
                    )
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def plot_reliability(bins: Mapping[str, list], path: str | Path, title: str = "") -> Path:
    """Reliability diagram from :func:`calibration_bins` output: per-bin
    accuracy bars against the diagonal, plus the gap to mean confidence and the
    ECE in the legend. Writes a PNG; returns the path."""
    edges = np.asarray(bins["edges"], dtype=float)
    width = np.diff(edges)
    left = edges[:-1]
    mask = np.array([c > 0 for c in bins["count"]])
    acc = np.array([a if a is not None else 0.0 for a in bins["accuracy"]])
    conf = np.array([c if c is not None else 0.0 for c in bins["confidence"]])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = _new_figure((5.0, 5.0))
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(left[mask], acc[mask], width=width[mask], align="edge",
           edgecolor="black", color="tab:blue", label="accuracy")
    ax.bar(left[mask], conf[mask] - acc[mask], bottom=acc[mask], width=width[mask],
           align="edge", edgecolor="tab:red", color="tab:red", alpha=0.3, label="gap")
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ece = _ece_from_bins(bins) if sum(bins["count"]) else float("nan")
    ax.set_title(f"{title} (ECE {ece:.3f})" if title else f"ECE {ece:.3f}")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


# --------------------------------------------------------------------------- #
# report
# --------------------------------------------------------------------------- #
Column = tuple[str, str, "str | Callable[[Any], str] | None"]


def _fmt_cell(value: Any, fmt: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if fmt is None:
        text = str(value)
    elif callable(fmt):
        text = fmt(value)
    elif "{" in fmt:
        text = fmt.format(value)
    else:
        text = format(value, fmt)
    return text.replace("|", "\\|").replace("\n", " ")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def comparison_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
) -> str:
    """Markdown table, one line per row, padded so columns line up in plain text.

    ``columns`` = ``[(key, header, fmt), ...]``; ``fmt`` is a format spec
    (``".2f"``, ``","``), a ``str.format`` template (``"{:.1f} %"``), a callable
    ``value -> str``, or ``None`` for ``str``. Missing / ``None`` / NaN values
    print as ``–``. Columns whose present values are all numbers are
    right-aligned (``---:``), others left-aligned. Returns the table without a
    trailing newline.
    """
    if not columns:
        raise ValueError("comparison_table needs at least one column")
    headers = [str(h) for _, h, _ in columns]
    cells = [[_fmt_cell(row.get(key), fmt) for key, _, fmt in columns] for row in rows]
    numeric = []
    for key, _, _ in columns:
        present = [row.get(key) for row in rows if row.get(key) is not None]
        numeric.append(bool(present) and all(_is_number(v) for v in present))
    widths = [
        max([len(headers[j]), 3] + [len(r[j]) for r in cells]) for j in range(len(columns))
    ]

    def line(items: list[str]) -> str:
        padded = [
            it.rjust(widths[j]) if numeric[j] else it.ljust(widths[j])
            for j, it in enumerate(items)
        ]
        return "| " + " | ".join(padded) + " |"

    sep = "| " + " | ".join(
        ("-" * (widths[j] - 1) + ":") if numeric[j] else "-" * widths[j]
        for j in range(len(columns))
    ) + " |"
    return "\n".join([line(headers), sep, *(line(r) for r in cells)])


# --------------------------------------------------------------------------- #
# convenience
# --------------------------------------------------------------------------- #
def _cfg(cfg: Mapping[str, Any], key: str) -> Any:
    try:
        return cfg[key]
    except KeyError:
        raise ParamsError(f"evaluate.{key} is missing from the evaluate params") from None


def evaluate_model(
    model: nn.Module,
    x_raw01: Tensor,
    y: Tensor,
    num_classes: int,
    transform: Transform | None,
    cfg: Mapping[str, Any],
    device: str | torch.device = "cpu",
    seed: int = 0,
    clamp: bool = True,
) -> dict[str, Any]:
    """All prediction-quality metrics of one model on one test split.

    ``x_raw01``: inputs scaled to [0, 1] (see :func:`noise_robustness`);
    ``transform``: the normaliser applied per batch on ``device``; ``cfg``: the
    ``evaluate`` params section (uses ``batch_size``, ``noise_std``,
    ``ece_bins``). Params, MACs and latency are separate calls
    (:func:`count_parameters`, :func:`count_macs`, :func:`cpu_latency_ms`).

    Returns a JSON-serialisable dict::

        {"n": int, "acc": top-1 %, "top5": top-5 % (only if num_classes > 10),
         "ece": [0, 1], "per_class_acc": [% or None], "confusion": [[int]],
         "noise_acc": {"0.0": %, "0.05": %, ...}, "calibration": calibration_bins(...)}
    """
    batch_size = int(_cfg(cfg, "batch_size"))
    stds = [float(s) for s in _cfg(cfg, "noise_std")]
    n_bins = int(_cfg(cfg, "ece_bins"))

    logits = predict(model, x_raw01, batch_size=batch_size, device=device, transform=transform)
    y = y.cpu().long()
    _check_logits_labels(logits, y)
    if logits.shape[1] != num_classes:
        raise ValueError(
            f"model outputs {logits.shape[1]} classes but the data set has {num_classes}"
        )
    bins = calibration_bins(logits, y, n_bins)
    out: dict[str, Any] = {"n": int(y.shape[0]), "acc": topk_accuracy(logits, y, 1)}
    if num_classes > 10:
        out["top5"] = topk_accuracy(logits, y, 5)
    out["ece"] = _ece_from_bins(bins)
    out["per_class_acc"] = per_class_accuracy(logits, y, num_classes)
    out["confusion"] = confusion_matrix(logits, y, num_classes).tolist()
    out["noise_acc"] = noise_robustness(
        model, x_raw01, y, stds, transform=transform, seed=seed,
        batch_size=batch_size, device=device, clamp=clamp,
    )
    out["calibration"] = bins
    return out
