"""Several DVC experiments as one table: mean and spread of the evaluation metrics over seeds.

    dvc exp run -n s0 -S train.seed=0 && dvc exp run -n s1 -S train.seed=1 && ...
    python -m pipeline.experiments s0 s1 s2            # markdown table on stdout
    python -m pipeline.experiments --match 'bm-seed*'  # every experiment whose name matches

`dvc exp show` shows runs side by side; this adds what a seed study needs: per model the mean
and the sample standard deviation of accuracy, ECE and accuracy under noise, over the chosen
runs. It reads `dvc exp show --json` (or a saved copy, `--json FILE`), so it works from any
workspace state once the experiments exist.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from pipeline.errors import PipelineError
from pipeline.layout import EVALUATE_METRICS as METRICS

MODEL_ORDER = ["teacher_image", "teacher_topology", "scratch", "kd", "sp", "tgd", "tpkd"]
_METRIC = re.compile(r"^(?P<model>.+?)_(?P<what>acc|top5|ece|params|noise(?P<std>[0-9.]+)_acc)$")


def _revisions(exp_show: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every experiment revision of `dvc exp show --json` (baselines and workspace excluded)."""
    for baseline in exp_show:
        for experiment in baseline.get("experiments") or []:
            yield from experiment.get("revs") or []


def experiment_metrics(exp_show: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """{experiment name: the flat evaluation metrics (data/metrics/evaluate.json)}."""
    runs: dict[str, dict[str, float]] = {}
    for rev in _revisions(exp_show):
        metrics = ((rev.get("data") or {}).get("metrics") or {}).get(METRICS.as_posix()) or {}
        if rev.get("name") and metrics.get("data"):
            runs[rev["name"]] = metrics["data"]
    return runs


def select(runs: dict[str, dict[str, float]], names: list[str], match: str | None) -> dict[str, dict[str, float]]:
    wanted = [n for n in runs if match and fnmatch.fnmatch(n, match)] + list(names)
    missing = [n for n in wanted if n not in runs]
    if missing:
        raise PipelineError(f"no finished experiment named {', '.join(missing)} "
                            f"(known: {', '.join(sorted(runs)) or 'none'}); see `dvc exp show`")
    if not wanted:
        raise PipelineError("name experiments, or give --match PATTERN")
    return {n: runs[n] for n in dict.fromkeys(wanted)}


def _by_model(metrics: dict[str, float]) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        found = _METRIC.match(key)
        if found:
            table.setdefault(found["model"], {})[found["what"]] = float(value)
    return table


def _cell(values: list[float], digits: int) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def summary_table(runs: dict[str, dict[str, float]]) -> str:
    """Markdown: one row per model, mean ± sample std over `runs` of each metric."""
    per_run = [_by_model(m) for m in runs.values()]
    models = sorted({m for r in per_run for m in r},
                    key=lambda m: (MODEL_ORDER.index(m) if m in MODEL_ORDER else len(MODEL_ORDER), m))
    noise = sorted({w for r in per_run for t in r.values() for w in t if w.startswith("noise")},
                   key=lambda w: float(w[len("noise"):-len("_acc")]))
    noise = [w for w in noise if float(w[len("noise"):-len("_acc")]) > 0]
    columns = [("acc", "acc %", 2), ("top5", "top-5 %", 2), ("ece", "ECE", 4),
               *((w, f"acc @ noise {w[len('noise'):-len('_acc')]}", 2) for w in noise)]
    columns = [c for c in columns if any(c[0] in t for r in per_run for t in r.values())]
    lines = [f"{len(runs)} runs: {', '.join(runs)} (mean ± sample std)", "",
             "| model | " + " | ".join(title for _, title, _ in columns) + " | params |",
             "|---|" + "---|" * (len(columns) + 1)]
    for model in models:
        cells = [_cell([r[model][key] for r in per_run if key in r.get(model, {})], digits)
                 for key, _, digits in columns]
        params = next((r[model]["params"] for r in per_run if "params" in r.get(model, {})), None)
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {'—' if params is None else f'{params:,.0f}'} |")
    return "\n".join(lines)


def load_exp_show(json_path: str | None) -> list[dict[str, Any]]:
    if json_path:
        return json.loads(Path(json_path).read_text())
    done = subprocess.run(["dvc", "exp", "show", "--json"], capture_output=True, text=True)
    if done.returncode != 0:
        raise PipelineError(f"`dvc exp show --json` failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="experiment names (dvc exp show)")
    parser.add_argument("--match", help="a glob over experiment names, e.g. 'seed*'")
    parser.add_argument("--json", help="a saved `dvc exp show --json` instead of running it")
    args = parser.parse_args(argv)
    try:
        runs = select(experiment_metrics(load_exp_show(args.json)), args.names, args.match)
    except PipelineError as error:
        sys.exit(f"error: {error}")
    print(summary_table(runs))


if __name__ == "__main__":
    main()
