"""The figure of the topology_figure stage: a few test samples beside their persistence images.

Its own stage (and outside pipeline/topology, the topology stage's code) so that redrawing never
recomputes the persistence images, and the topology stage does nothing but compute them.

One row per sample (the first test sample of each of the first classes), the raw input on the
left, then every PI channel of the recipe in storage order, titled by channel, filtration and
homology dimension. PIs are drawn with birth on x and persistence on y (origin lower left), over
the recipe's window, each panel on its own colour scale: from its own minimum to its own maximum,
on a square-root scale (a PI's mass sits in a few pixels - cubical PIs on their [0, 1] window
are a few dots - and the Gaussians' shoulders would be black on a linear one). The title names
the data set (`pipeline.titles.dataset_title`) and is wrapped to the figure's width.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import TopologyError
from pipeline.store import open_split, split_path
from pipeline.titles import wrap_title
from pipeline.topology.filtrations import channel_labels

CELL_INCHES = 1.55
MIN_WIDTH_INCHES = 6.0   # room for the title beside a recipe of one or two channels
TITLE_POINTS = 9
GAMMA = 0.5              # each panel's colour scale: (value - min) / (max - min), squared-rooted


def pick_samples(labels: np.ndarray, n: int) -> np.ndarray:
    """Indices of the first sample of each class, in class order, at most n."""
    _, first = np.unique(labels, return_index=True)   # classes in sorted order
    return first[:n]


def _extent(label: str, recipe: dict) -> list[float]:
    lo_hi = ((recipe["cubical_range"], recipe["cubical_range"]) if "cubical" in label
             else (recipe["birth_range"], recipe["pers_range"]))
    return [*lo_hi[0], *lo_hi[1]]


def _window(label: str, recipe: dict) -> str:
    """`sequence [0, 0.3] x [0, 0.3]`, with no-break spaces: a wrapped title never cuts a window."""
    x0, x1, y0, y1 = _extent(label, recipe)
    kind = "cubical" if "cubical" in label else "sequence"
    return f"{kind} [{x0:g}, {x1:g}] x [{y0:g}, {y1:g}]".replace(" ", "\u00a0")


def _draw_input(ax, sample: np.ndarray, modality: str) -> None:
    if modality == "image":
        shown = sample[..., 0] if sample.shape[-1] != 3 else sample
        ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        ax.plot(sample, linewidth=0.7)
        ax.tick_params(labelsize=6)


def _draw_pi(ax, pi: np.ndarray, extent: list[float]) -> None:
    """One PI on its own colour scale: its own minimum to its own maximum (an empty PI black)."""
    from matplotlib.colors import PowerNorm

    lo, hi = float(pi.min()), float(pi.max())
    ax.imshow(pi.T, origin="lower", cmap="magma", norm=PowerNorm(GAMMA, vmin=lo, vmax=hi if hi > lo else lo + 1.0),
              extent=extent, aspect="auto", interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def title_of(titles: list[str], recipe: dict, modality: str, dataset: str | None) -> str:
    """The figure's title: what is drawn, on which data set, over which window, on which scale."""
    windows = sorted({_window(t, recipe) for t in titles})
    black = "empty, or below the min_max floor" if modality == "image" else "empty"
    of = f", {dataset}" if dataset else ""
    return (f"Persistence images of test samples{of}\n"
            f"x: birth, y: persistence over {', '.join(windows)}\n"
            f"Each panel scaled to its own maximum (from its own minimum; square-root colour scale); "
            f"all black: {black}")


def figure(samples: np.ndarray, pis: np.ndarray, titles: list[str], row_names: list[str],
           recipe: dict, modality: str, dataset: str | None = None):
    """The matplotlib Figure of samples (n, ...) and their PIs (n, K, R, R); `dataset`: the data
    set's display name, for the title."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n, k = pis.shape[:2]
    width = max(CELL_INCHES * (k + 1), MIN_WIDTH_INCHES)
    fig = Figure(figsize=(width, CELL_INCHES * n + 0.9), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n, k + 1, squeeze=False)
    for row in range(n):
        _draw_input(axes[row, 0], samples[row], modality)
        axes[row, 0].set_ylabel(row_names[row], fontsize=8)
        for col in range(k):
            _draw_pi(axes[row, col + 1], pis[row, col], _extent(titles[col], recipe))
            if row == 0:
                axes[row, col + 1].set_title(titles[col].replace(", ", "\n"), fontsize=8)
    axes[0, 0].set_title("input", fontsize=8)
    fig.suptitle(wrap_title(title_of(titles, recipe, modality, dataset), width, TITLE_POINTS), fontsize=TITLE_POINTS)
    return fig


def draw(samples: np.ndarray, pis: np.ndarray, titles: list[str], row_names: list[str],
         recipe: dict, modality: str, path: str | Path, dataset: str | None = None) -> Path:
    """Write the figure (PNG) of samples (n, ...) and their PIs (n, K, R, R); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure(samples, pis, titles, row_names, recipe, modality, dataset).savefig(path, format="png")
    return path


def draw_from_stores(prepared_dir, topology_dir, path: str | Path, n: int = 4,
                     dataset: str | None = None) -> Path:
    """The figure of the first test sample of each of the first n classes, read from the stage's
    stores (the PIs as stored; nothing is recomputed); `dataset` names the data set in the title."""
    raw = open_split(split_path(prepared_dir, "test"))
    topo = open_split(split_path(topology_dir, "test"))
    rows = pick_samples(np.asarray(raw["y"][...]), n)
    samples = np.stack([raw["x"][int(i)] for i in rows])
    pis = np.stack([topo["pis"][int(i)] for i in rows])
    attrs = dict(topo.attrs)
    recipe, modality = attrs["recipe"], attrs["modality"]
    titles = channel_labels(recipe, samples.shape[-1], modality)
    if len(titles) != pis.shape[1]:
        raise TopologyError(f"{split_path(topology_dir, 'test')}: {pis.shape[1]} PI channels, but its recipe "
                            f"{recipe} names {len(titles)}")
    classes = attrs.get("classes") or []
    labels = np.asarray(raw["y"][...])[rows]
    row_names = [f"{classes[y] if y < len(classes) else y} (#{i})" for y, i in zip(labels, rows)]
    return draw(samples, pis, titles, row_names, recipe, modality, path, dataset)
