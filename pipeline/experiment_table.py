"""The comparison that reads in a terminal (`python -m pipeline.experiments` with no names): the
baseline commit and each experiment, the params in which each differs from the baseline, and
every model's accuracy and ECE, and a further metric's block when asked (`--metric best_acc`: the
best epoch's accuracy, labelled optimistic); at most 120 characters wide (models fold into further
blocks)."""
from __future__ import annotations

import textwrap

from pipeline.experiment_runs import METRICS, Run, pending_note
from pipeline.experiment_settings import changed_params, describe, plural, show_value
from pipeline.experiment_stats import LABELS, TITLES, by_model, lacking, lacking_note, model_key

WIDTH = 120
NAME_LIMIT = 24
GAP = "  "
MAX_LINES = 3   # of one run's changed params


def _name(run: Run) -> str:
    name = run.name if len(run.name) <= NAME_LIMIT else run.name[:NAME_LIMIT - 1] + "…"
    return name


def _fit(items: list[str], room: int, most: int = MAX_LINES) -> list[str]:
    """`a  b  c` in lines of at most `room` characters, at most `most` lines; what does not fit
    becomes `… +N more`."""
    lines: list[list[str]] = [[]]
    for i, item in enumerate(items):
        last = len(lines) == most
        tail = f"{GAP}… +{len(items) - i - 1} more" if last and i < len(items) - 1 else ""
        if lines[-1] and len(GAP.join([*lines[-1], item]) + tail) > room:
            if last:
                return [GAP.join(line) for line in lines[:-1]] + \
                    [GAP.join(lines[-1]) + f"{GAP}… +{len(items) - i} more"]
            lines.append([])
        lines[-1].append(item)
    return [GAP.join(line) for line in lines] if items else ["—"]


def _params_block(rows: list[Run], reference: Run | None, width: int) -> list[str]:
    label = f"params that differ from {reference.name}" if reference else "params"
    left = max(len("experiment"), *(len(_name(r)) for r in rows))
    room = width - left - len(GAP)
    lines = [f"{'experiment':<{left}}{GAP}{label}"]
    for run in rows:
        items = (["(the baseline)"] if run is reference else
                 changed_params(run, reference) if reference else [])
        for i, text in enumerate(_fit(items, room)):
            lines.append(f"{_name(run) if i == 0 else '':<{left}}{GAP}{text}")
    return lines


def _blocks(title: str, names: list[str], columns: list[tuple[str, list[str]]],
            width: int) -> list[str]:
    """Columns right-aligned beside the names; as many per block as fit in `width`."""
    left = max(len(title), *(len(n) for n in names))
    blocks: list[list[tuple[str, list[str], int]]] = [[]]
    used = left
    for header, cells in columns:
        size = max(len(header), *(len(c) for c in cells))
        if blocks[-1] and used + len(GAP) + size > width:
            blocks.append([])
            used = left
        blocks[-1].append((header, cells, size))
        used += len(GAP) + size
    lines: list[str] = []
    for block in blocks:
        lines.append("")
        lines.append(f"{title:<{left}}" + "".join(f"{GAP}{h:>{s}}" for h, _, s in block))
        for i, name in enumerate(names):
            lines.append(f"{name:<{left}}" + "".join(f"{GAP}{c[i]:>{s}}" for _, c, s in block))
    return lines


def _metric_blocks(rows: list[Run], width: int, extra: str | None = None) -> list[str]:
    """Accuracy and ECE per model, with `extra`'s block (captioned by its label) after accuracy."""
    shown = ["acc", *([extra] if extra and extra not in ("acc", "ece") else []), "ece"]
    tables = [by_model(run.metrics or {}) for run in rows]
    models = sorted({m for t in tables for m, v in t.items() if set(shown) & set(v)}, key=model_key)
    names = [_name(r) for r in rows]
    lines: list[str] = []
    for key in shown:
        digits = 4 if key == "ece" else 2
        columns = [(m, [f"{t[m][key]:.{digits}f}" if key in t.get(m, {}) else "—" for t in tables])
                   for m in models if any(key in t.get(m, {}) for t in tables)]
        if columns:
            block = _blocks(TITLES.get(key, key), names, columns, width)
            lines += block[:1] + ([f"{key}: {LABELS[key]}"] if key in LABELS else []) + block[1:]
    return lines


def comparison_rows(workspace: Run | None, baseline: Run | None, experiments: list[Run]) -> list[Run]:
    """The baseline, the experiments, and the workspace when it holds a run neither of them is."""
    rows = [*([baseline] if baseline else []), *experiments]
    if workspace is not None and workspace.metrics and not any(
            (r.params, r.metrics) == (workspace.params, workspace.metrics) for r in rows):
        rows.append(workspace)
    return rows


def comparison(rows: list[Run], baseline: Run | None, pending: list[Run] = (),
               width: int = WIDTH, metric: str | None = None) -> str:
    """The comparison table, every line at most `width` characters; `metric` (best_acc,
    noise0.1_acc, ...) adds its block after the accuracy, and a note naming the runs without it."""
    count = plural(sum(r.kind == "experiment" for r in rows), "experiment")
    if baseline is not None:
        seed = (baseline.params.get("train") or {}).get("seed")
        title = (f"Baseline {baseline.name} ({baseline.commit}): {describe(baseline.params)}, "
                 f"seed {show_value(seed)}; {count}")
    else:
        title = f"{count} (no baseline commit)"
    lines = [title if len(title) <= width else title[:width - 1] + "…", ""]
    lines += _params_block(rows, baseline, width)
    lines += _metric_blocks(rows, width, metric)
    notes = []
    if baseline is not None and not baseline.metrics:
        notes.append(f"note: the baseline {baseline.name} has no {METRICS.as_posix()}: commit "
                     "dvc.lock and data/metrics after `dvc repro` (README: Keep the baseline)")
    older = lacking([r for r in rows if r.metrics], metric) if metric else []
    if older:   # a long note of its own: wrapped, not cut, so that the remedy stays readable
        notes += textwrap.wrap("note: " + lacking_note(older, metric), width, subsequent_indent="  ")
    if pending:
        notes.append("note: no metrics yet: " + pending_note(list(pending)))
    if not any(r.kind == "experiment" for r in rows):
        notes.append("note: no experiments yet: `dvc exp run -n NAME -S key=value`")
    return "\n".join(lines + ([""] + [_cut_note(n, width) for n in notes] if notes else []))


def _cut_note(note: str, width: int) -> str:
    return note if len(note) <= width else note[:width - 1] + "…"
