"""Figures of the evaluate stage: static PNGs (matplotlib) and the tables DVC draws as charts.

`dvc plots show` renders what dvc.yaml's top-level `plots:` names: the per-epoch CSVs written
here (one row per model or group and epoch, drawn by `plots/lines.json` as one line each) and
the PNGs. Its Vega charts need the Vega scripts from a CDN; every per-epoch series is also drawn
here as a PNG (`plot_curves`), so that every figure reads offline. Every figure says what it
shows, on which data set and seed, in its title.
"""
from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.titles import wrap_title

PNG_DPI = 120


def _figure(width: float, height: float, layout: str | None = None):
    """A matplotlib figure on the Agg canvas (no pyplot: no global state, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=PNG_DPI, layout=layout)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def _grid(n: int, columns: int = 4) -> tuple[int, int]:
    columns = min(columns, n)
    return math.ceil(n / columns), columns


# --------------------------------------------------------------------------- per-epoch tables
def read_live_series(tsv: str | Path) -> list[tuple[int, float]]:
    """(epoch, value) pairs of one DVCLive metric file (`step` 0 is epoch 1); [] when absent."""
    tsv = Path(tsv)
    if not tsv.is_file():
        return []
    with tsv.open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if not rows:
        return []
    value = [k for k in rows[0] if k not in ("timestamp", "step")][0]
    return [(int(r["step"]) + 1, float(r[value])) for r in rows]


def write_series(path: str | Path, series: Mapping[str, list[tuple[int, float]]], value: str) -> Path:
    """A long CSV ``epoch,series,<value>``: one row per series (a model, a group) and epoch; a
    header alone when there is no series, so that DVC draws an empty chart, not a load error.
    `.dvc/plots/lines.json` draws one line per series."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "series", value])
        for name, points in series.items():
            writer.writerows([epoch, name, f"{y:.6g}"] for epoch, y in points)
    return path


# --------------------------------------------------------------------------- PNGs
Series = Mapping[str, Sequence[tuple[int, float]]]


def plot_curves(panels: Mapping[str, Series], path: str | Path, title: str, ylabel: str,
                empty: str = "no series logged") -> Path:
    """Per-epoch lines: one panel per key of `panels` (titled by it, untitled when the key is
    ""), one line per series (a model, a group) with a marker per epoch; the series of the CSVs
    (`write_series`). Without any point, one panel saying `empty` (a file all the same: dvc.yaml
    names it, and a missing plot is a load error)."""
    from matplotlib.ticker import MaxNLocator

    shown = {name: {k: v for k, v in series.items() if v} for name, series in panels.items()}
    shown = {name: series for name, series in shown.items() if series}
    figure = _figure(max(6.4, 4.6 * len(shown)), 4.0, layout="constrained")
    if not shown:
        ax = figure.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, empty, ha="center", va="center", wrap=True, fontsize=9)
        ax.set_axis_off()
    for i, (name, series) in enumerate(shown.items()):
        ax = figure.add_subplot(1, len(shown), i + 1)
        for label, points in series.items():
            epochs, values = zip(*points)
            ax.plot(epochs, values, marker="o", markersize=3, linewidth=1.2, label=label)
        epochs = [e for points in series.values() for e, _ in points]
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)   # one epoch too is a readable axis
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        if name:
            ax.set_title(name, fontsize=9)
    figure.suptitle(wrap_title(title, figure.get_figwidth(), 10), fontsize=10)
    return _save(figure, path)


def plot_confusions(confusions: Mapping[str, Any], classes: Sequence[str], path: str | Path,
                    title: str, max_labels: int = 12) -> Path:
    """One panel per model: rows true class, columns predicted, colour = share of the true
    class, counts written in the cells (class names and counts only up to ``max_labels``)."""
    rows, columns = _grid(len(confusions))
    figure = _figure(3.4 * columns + 0.8, 3.4 * rows + 0.6)
    labelled = len(classes) <= max_labels
    image = None
    for i, (name, matrix) in enumerate(confusions.items()):
        ax = figure.add_subplot(rows, columns, i + 1)
        cm = np.asarray(matrix, dtype=np.int64)
        support = cm.sum(axis=1, keepdims=True)
        share = np.divide(cm, support, out=np.zeros(cm.shape), where=support > 0)
        image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
        accuracy = 100.0 * np.trace(cm) / max(cm.sum(), 1)
        ax.set_title(f"{name} ({accuracy:.1f} %)", fontsize=9)
        ax.set_xlabel("predicted class", fontsize=8)
        ax.set_ylabel("true class", fontsize=8)
        ticks = np.arange(len(classes)) if labelled else []
        ax.set_xticks(ticks, [str(c) for c in classes] if labelled else [], fontsize=6, rotation=90)
        ax.set_yticks(ticks, [str(c) for c in classes] if labelled else [], fontsize=6)
        if labelled:
            for (r, c), n in np.ndenumerate(cm):
                if n:
                    ax.text(c, r, str(n), ha="center", va="center", fontsize=5,
                            color="white" if share[r, c] > 0.5 else "black")
    figure.suptitle(wrap_title(title, figure.get_figwidth(), 10), fontsize=10)
    figure.tight_layout(rect=(0, 0, 0.93, 1))  # room for the colour bar on the right
    figure.colorbar(image, cax=figure.add_axes((0.945, 0.2, 0.012, 0.6)), label="share of the true class")
    return _save(figure, path)


def plot_reliability(bins: Mapping[str, Mapping[str, list]], eces: Mapping[str, float],
                     path: str | Path, title: str) -> Path:
    """One reliability diagram per model: the accuracy of each confidence bin (bars) and its
    mean confidence (red ticks) against the diagonal; the ECE in the panel title."""
    rows, columns = _grid(len(bins))
    figure = _figure(3.0 * columns, 3.0 * rows + 0.5)
    for i, (name, b) in enumerate(bins.items()):
        ax = figure.add_subplot(rows, columns, i + 1)
        edges = np.asarray(b["edges"])
        full = [j for j, n in enumerate(b["count"]) if n]
        left, right = edges[full], edges[[j + 1 for j in full]]
        ax.bar(left, [b["accuracy"][j] for j in full], width=right - left, align="edge",
               edgecolor="black", linewidth=0.5, color="tab:blue", label="accuracy")
        ax.hlines([b["confidence"][j] for j in full], left, right, colors="tab:red", linewidth=2,
                  label="mean confidence")
        ax.plot([0, 1], [0, 1], "k--", linewidth=1)
        ax.set(xlim=(0, 1), ylim=(0, 1))
        ax.set_title(f"{name} (ECE {eces[name]:.3f})", fontsize=9)
        ax.set_xlabel("confidence (max softmax)", fontsize=8)
        ax.set_ylabel("accuracy (fraction)", fontsize=8)
    figure.axes[0].legend(loc="upper left", fontsize=7)
    figure.suptitle(wrap_title(title, figure.get_figwidth(), 10), fontsize=10)
    figure.tight_layout()
    return _save(figure, path)


def plot_students(results: Sequence[Mapping[str, Any]], path: str | Path, title: str,
                  chance: float | None = None) -> Path:
    """Bars per student: test accuracy clean and under each noise level (left, with the chance
    level dashed), ECE (right)."""
    names = [r["model"] for r in results]
    stds = sorted({s for r in results for s in r.get("noise_acc", {}) if float(s) > 0}, key=float)
    conditions = [("clean", lambda r: r["acc"])] + [
        (f"noise σ={s}", lambda r, s=s: r.get("noise_acc", {}).get(s, np.nan)) for s in stds]
    figure = _figure(max(7.0, 1.3 * len(names) + 4.5), 3.8)
    left = figure.add_subplot(1, 3, (1, 2))
    width = 0.8 / len(conditions)
    x = np.arange(len(names))
    for k, (label, value) in enumerate(conditions):
        heights = [value(r) for r in results]
        left.bar(x + (k - (len(conditions) - 1) / 2) * width, heights, width, label=label)
    if chance is not None:
        left.axhline(chance, color="black", linestyle="--", linewidth=0.8, label=f"chance ({chance:.0f} %)")
    left.set_xticks(x, names)
    left.set(ylim=(0, 100), ylabel="test accuracy (%)", xlabel="student")
    left.legend(fontsize=7, ncol=len(conditions) + 1, loc="lower center", bbox_to_anchor=(0.5, 1.0),
                frameon=False)
    right = figure.add_subplot(1, 3, 3)
    right.bar(x, [r["ece"] for r in results], 0.6, color="tab:gray")
    right.set_xticks(x, names, rotation=45)
    right.set(ylabel="expected calibration error (0-1)", xlabel="student")
    figure.suptitle(wrap_title(title, figure.get_figwidth(), 10), fontsize=10)
    figure.tight_layout()
    return _save(figure, path)
