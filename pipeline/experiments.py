"""Several DVC experiments as one table: a seed study's means, or paired differences to a baseline.

Summary (mean ± sample std of accuracy, ECE and accuracy under noise, per model, over runs):

    for s in 0 1 2; do dvc exp run -n seed$s -S train.seed=$s; done
    python -m pipeline.experiments seed0 seed1 seed2     # name the runs
    python -m pipeline.experiments --match 'seed*'       # or a glob over experiment names

Paired differences to a baseline model (`--baseline`): every student model minus the baseline
on the same seed, with the mean over seeds, its 95 % Student t interval and the per-seed values:

    python -m pipeline.experiments --match 'seed*' --baseline kd
    python -m pipeline.experiments --match 'seed*' --baseline scratch --metric ece

  Without `--baseline-match` both sides come from the same experiment: one experiment is one
  seed, and its students share the teachers, the scratch initialisation and the seed, so
  `tgd_acc - kd_acc` is computed within each experiment. The matched experiments must have
  distinct `train.seed`s.

  With `--baseline-match GLOB` the baseline model's metric comes from other experiments, paired
  by `train.seed`: compare a variant against the default run of the same seed, e.g. tgd at
  alpha 0.9 against kd of the default runs, or the same method across two settings:

    python -m pipeline.experiments --match 'alpha0.9-*' --baseline-match 'base-*' --baseline kd
    python -m pipeline.experiments --match 'alpha0.9-*' --baseline-match 'base-*' --baseline tgd

  Seeds present on one side only are left out, and the output says which. The interval is
  mean ± t(0.975, n-1) * s / sqrt(n), s the sample std of the n per-seed differences: it
  assumes the differences are roughly normal, and needs n >= 2.

`--metric` picks the metric suffix (acc, top5, ece, noise0.1_acc, ...; default acc).

The runs come from `dvc exp show --json -A` (experiments on every commit, so runs made before a
later commit are found), or from a saved copy (`--json FILE`). Only finished runs count; when none
is found the error says why: no experiments at all, none matching the pattern (with the names
seen), or matching ones still queued, running, failed or without a metrics file.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import math
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from scipy import stats

from pipeline.errors import PipelineError
from pipeline.layout import EVALUATE_METRICS as METRICS

FIRST_MODELS = ["teacher_image", "teacher_topology", "scratch"]  # then the methods, by name
_METRIC = re.compile(r"^(?P<model>.+?)_(?P<what>acc|top5|ece|params|noise(?P<std>[0-9.]+)_acc)$")


@dataclass(frozen=True)
class Run:
    """One experiment of `dvc exp show --json`: its state and, once finished, its metrics."""
    name: str
    commit: str                        # the baseline commit it hangs off
    state: str                         # done | queued | running | failed
    params: dict[str, Any]             # params.yaml as the run saw it
    metrics: dict[str, float] | None   # data/metrics/evaluate.json; None while absent
    timestamp: str

    @property
    def finished(self) -> bool:
        return self.state == "done" and bool(self.metrics)

    @property
    def why_unfinished(self) -> str:
        return self.state if self.state != "done" else f"no {METRICS.as_posix()}"


def _runs(exp_show: list[dict[str, Any]]) -> Iterator[Run]:
    """Every experiment of `dvc exp show --json [-A]` (baselines and workspace excluded)."""
    for baseline in exp_show:
        for experiment in baseline.get("experiments") or []:
            executor = experiment.get("executor") or {}
            state = executor.get("state") or "done"
            for rev in experiment.get("revs") or []:
                data = rev.get("data") or {}
                found = ((data.get("metrics") or {}).get(METRICS.as_posix()) or {}).get("data")
                params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
                yield Run(name=rev.get("name") or experiment.get("name") or rev["rev"][:7],
                          commit=baseline.get("rev", "")[:7],
                          state="done" if state == "success" else state,
                          params=params, metrics=found or None,
                          timestamp=data.get("timestamp") or "")


def collect_runs(exp_show: list[dict[str, Any]]) -> dict[str, Run]:
    """{name: run}; a name used on several commits keeps its newest finished run (noted on stderr)."""
    by_name: dict[str, list[Run]] = {}
    for run in _runs(exp_show):
        by_name.setdefault(run.name, []).append(run)
    chosen = {}
    for name, runs in by_name.items():
        runs.sort(key=lambda r: (r.finished, r.timestamp), reverse=True)
        chosen[name] = runs[0]
        if len(runs) > 1:
            print(f"note: experiment {name} exists on commits {', '.join(r.commit for r in runs)}; "
                  f"using the one on {runs[0].commit}", file=sys.stderr)
    return chosen


def experiment_metrics(exp_show: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """{experiment name: the flat evaluation metrics} of the finished experiments."""
    return {name: run.metrics for name, run in collect_runs(exp_show).items() if run.finished}


def select(runs: dict[str, Run], names: list[str], match: str | None) -> dict[str, Run]:
    """The finished runs named or matching `match`; an error that says why when there are none."""
    if not names and not match:
        raise PipelineError("name experiments, or give --match PATTERN")
    if not runs:
        raise PipelineError("no DVC experiments in this repository (`dvc exp show -A` lists none); "
                            "run some first: `dvc exp run -n NAME -S key=value`")
    unknown = [n for n in names if n not in runs]
    if unknown:
        raise PipelineError(f"no experiment named {', '.join(unknown)} "
                            f"(experiments seen: {', '.join(sorted(runs))})")
    matched = [n for n in runs if match and fnmatch.fnmatch(n, match)]
    if match and not matched and not names:
        raise PipelineError(f"no experiment matches {match!r} "
                            f"(experiments seen: {', '.join(sorted(runs))})")
    wanted = list(dict.fromkeys(list(names) + matched))
    pending = [n for n in wanted if not runs[n].finished]
    named_pending = [n for n in names if n in pending]
    if named_pending or len(pending) == len(wanted):
        which = ", ".join(f"{n} ({runs[n].why_unfinished})" for n in named_pending or pending)
        subject = "named" if named_pending else f"matching {match!r}"
        raise PipelineError(f"the experiments {subject} have no metrics yet (queued, running or "
                            f"failed): {which}; see `dvc queue status`")
    if pending:
        print("note: left out, no metrics yet: " +
              ", ".join(f"{n} ({runs[n].why_unfinished})" for n in pending), file=sys.stderr)
    return {n: runs[n] for n in wanted if runs[n].finished}


def _by_model(metrics: dict[str, float]) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        found = _METRIC.match(key)
        if found:
            table.setdefault(found["model"], {})[found["what"]] = float(value)
    return table


def _model_key(model: str) -> tuple[int, str]:
    return (FIRST_MODELS.index(model) if model in FIRST_MODELS else len(FIRST_MODELS), model)


def _cell(values: list[float], digits: int) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def summary_table(runs: dict[str, Run]) -> str:
    """Markdown: one row per model, mean ± sample std over `runs` of each metric."""
    per_run = [_by_model(run.metrics) for run in runs.values()]
    models = sorted({m for r in per_run for m in r}, key=_model_key)
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


# --- paired differences --------------------------------------------------------------------


def seed_of(run: Run) -> int:
    seed = (run.params.get("train") or {}).get("seed")
    if seed is None:
        raise PipelineError(f"experiment {run.name}: no train.seed in its params.yaml")
    return seed


def by_seed(runs: dict[str, Run]) -> dict[int, Run]:
    """{train.seed: run}; two runs on one seed cannot both be a paired study's replicate."""
    seen: dict[int, Run] = {}
    for run in runs.values():
        seed = seed_of(run)
        if seed in seen:
            raise PipelineError(f"experiments {seen[seed].name} and {run.name} both have "
                                f"train.seed={seed}: a paired study needs one run per seed; "
                                "narrow the pattern")
        seen[seed] = run
    return seen


def t_interval(differences: list[float]) -> tuple[float, float, float] | None:
    """(mean, low, high): mean ± t(0.975, n-1) s / sqrt(n); None below two values."""
    n = len(differences)
    if n < 2:
        return None
    mean = float(np.mean(differences))
    half = stats.t.ppf(0.975, n - 1) * np.std(differences, ddof=1) / math.sqrt(n)
    return mean, mean - half, mean + half


@dataclass
class Paired:
    """Per-seed differences `model - baseline` of one metric."""
    baseline: str
    metric: str
    pairs: dict[int, tuple[str, str]]             # seed: (run name, baseline run name)
    differences: dict[str, dict[int, float]]      # model: {seed: difference}
    unpaired: list[str]                           # runs whose seed the other side lacks


def _students(metrics: dict[str, float], metric: str, skip: str | None) -> dict[str, float]:
    """{model: its `metric`} for the students (teachers are no method to compare)."""
    return {model: values[metric] for model, values in _by_model(metrics).items()
            if metric in values and not model.startswith("teacher_") and model != skip}


def paired_differences(runs: dict[str, Run], baseline_runs: dict[str, Run] | None,
                       baseline: str, metric: str = "acc") -> Paired:
    """`model_metric - baseline_metric` per seed, for every student model of `runs`; the baseline
    from the same experiment (`baseline_runs` None) or from `baseline_runs`' run of that seed."""
    mine = by_seed(runs)
    theirs = mine if baseline_runs is None else by_seed(baseline_runs)
    seeds = sorted(set(mine) & set(theirs))
    unpaired = sorted({r.name for side in (mine, theirs) for s, r in side.items() if s not in seeds})
    key = f"{baseline}_{metric}"
    missing = [theirs[s].name for s in seeds if key not in theirs[s].metrics]
    if missing or not seeds:
        raise PipelineError(f"no {key} in {', '.join(missing)}" if missing else
                            "no seed in common between --match and --baseline-match runs")
    skip = baseline if baseline_runs is None else None   # model - itself in one run is 0
    differences: dict[str, dict[int, float]] = {}
    for seed in seeds:
        for model, value in _students(mine[seed].metrics, metric, skip).items():
            differences.setdefault(model, {})[seed] = value - float(theirs[seed].metrics[key])
    if not differences:
        raise PipelineError(f"no student metric *_{metric} besides {key} in "
                            f"{', '.join(mine[s].name for s in seeds)}")
    return Paired(baseline, metric, {s: (mine[s].name, theirs[s].name) for s in seeds},
                  dict(sorted(differences.items(), key=lambda item: _model_key(item[0]))), unpaired)


def _pairs_line(paired: Paired, same_run: bool) -> str:
    if same_run:
        return "Pairs (within each run): " + ", ".join(
            f"seed {s}: {run}" for s, (run, _) in paired.pairs.items())
    return "Pairs (by train.seed): " + ", ".join(
        f"seed {s}: {run} − {base}" for s, (run, base) in paired.pairs.items())


def paired_table(paired: Paired, same_run: bool) -> str:
    """Markdown: per model the mean difference, its 95 % t interval and each seed's difference."""
    digits = 4 if paired.metric == "ece" else 2
    seeds = list(paired.pairs)
    quantile = (f"; t(0.975, {len(seeds) - 1}) = {stats.t.ppf(0.975, len(seeds) - 1):.4f}"
                if len(seeds) > 1 else "")
    what = (f"model − {paired.baseline} of the same run" if same_run else
            f"model − {paired.baseline} of the baseline run with the same train.seed")
    lines = [f"Paired differences in `{paired.metric}`: {what}, per seed "
             f"({len(seeds)} seeds). Interval: 95 % Student t interval over seeds, "
             f"mean ± t(0.975, n−1) · s / √n (s: sample std of the per-seed differences{quantile}).",
             "", _pairs_line(paired, same_run)]
    if paired.unpaired:
        lines.append(f"Left out (no run with the same train.seed on the other side): "
                     f"{', '.join(paired.unpaired)}")
    lines += ["", f"| model | n | mean − {paired.baseline} | 95 % t interval | "
              + " | ".join(f"seed {s}" for s in seeds) + " |",
              "|---|---|---|---|" + "---|" * len(seeds)]
    for model, per_seed in paired.differences.items():
        values = [per_seed[s] for s in seeds if s in per_seed]
        interval = t_interval(values)
        mean = f"{np.mean(values):+.{digits}f}"
        span = "—" if interval is None else f"[{interval[1]:+.{digits}f}, {interval[2]:+.{digits}f}]"
        cells = [f"{per_seed[s]:+.{digits}f}" if s in per_seed else "—" for s in seeds]
        lines.append(f"| {model} | {len(values)} | {mean} | {span} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- command line ---------------------------------------------------------------------------


def load_exp_show(json_path: str | None) -> list[dict[str, Any]]:
    """A saved `dvc exp show --json`, or a fresh one over all commits (`-A`)."""
    if json_path:
        return json.loads(Path(json_path).read_text())
    done = subprocess.run(["dvc", "exp", "show", "--json", "-A"], capture_output=True, text=True)
    if done.returncode != 0:
        raise PipelineError(f"`dvc exp show --json -A` failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("names", nargs="*", help="experiment names (dvc exp show)")
    parser.add_argument("--match", help="a glob over experiment names, e.g. 'seed*'")
    parser.add_argument("--baseline", metavar="MODEL",
                        help="paired differences: each student model minus MODEL (kd, scratch, ...)")
    parser.add_argument("--baseline-match", metavar="GLOB",
                        help="take --baseline's metric from these experiments, paired by train.seed")
    parser.add_argument("--metric", default="acc", help="metric suffix: acc, top5, ece, noise0.1_acc, ...")
    parser.add_argument("--json", help="a saved `dvc exp show --json` instead of running it")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        if args.baseline_match and not args.baseline:
            raise PipelineError("--baseline-match needs --baseline MODEL")
        runs = collect_runs(load_exp_show(args.json))
        chosen = select(runs, args.names, args.match)
        if not args.baseline:
            print(summary_table(chosen))
            return
        others = select(runs, [], args.baseline_match) if args.baseline_match else None
        paired = paired_differences(chosen, others, args.baseline, args.metric)
    except PipelineError as error:
        sys.exit(f"error: {error}")
    print(paired_table(paired, same_run=others is None))


if __name__ == "__main__":
    main()
