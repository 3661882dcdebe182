"""The numbers of pipeline.experiments: per model mean ± sample std over repeats of one setting,
and paired differences to a baseline model per seed with 95 % Student t intervals.

`acc` is the evaluated checkpoint's test accuracy (evaluate.checkpoint: the last epoch by
default); `best_acc` the best epoch's, that epoch chosen on the test set itself (optimistic, as the
TGD authors' code reports it): always labelled so, in every table that shows it."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
from scipy import stats

from pipeline.errors import PipelineError
from pipeline.experiment_runs import METRICS, Run
from pipeline.experiment_settings import describe, plural

FIRST_MODELS = ["teacher_image", "teacher_topology", "scratch"]  # then the methods, by name
_METRIC = re.compile(r"^(?P<model>.+?)_(?P<what>acc|best_acc|best_epoch|top5|ece|params|"
                     r"noise(?P<std>[0-9.]+)_acc)$")
OPTIMISTIC = "best-epoch test accuracy (optimistic: epoch chosen on the test set)"
LABELS = {"best_acc": OPTIMISTIC, "best_epoch": "best epoch (chosen on the test set)"}
TITLES = {"acc": "acc %", "best_acc": "best acc % (optimistic)", "top5": "top-5 %", "ece": "ECE"}
# Why an experiment may lack a metric that newer runs have
SINCE = {m: "evaluated before evaluate.json recorded the best epoch; re-run the experiment with "
            "the current code (its evaluate stage reads the training summaries)"
         for m in ("best_acc", "best_epoch")}


def metric_label(metric: str) -> str:
    """`metric` as the output names it: `` `best_acc`, the best-epoch test accuracy (optimistic: ...) ``."""
    return f"`{metric}`, the {LABELS[metric]}" if metric in LABELS else f"`{metric}`"


def lacking(runs: list[Run], metric: str) -> list[str]:
    """The names of `runs` whose metrics hold no `<model>_<metric>` at all."""
    return [run.name for run in runs
            if not any(metric in values for values in by_model(run.metrics or {}).values())]


def lacking_note(names: list[str], metric: str) -> str:
    why = f": {SINCE[metric]}" if metric in SINCE else ""
    return f"no *_{metric} in the {METRICS.as_posix()} of {', '.join(names)}{why}"


def require_metric(runs: dict[str, Run], metric: str) -> None:
    """Refuse, naming them, runs without `metric` (older experiments have no best_acc)."""
    missing = lacking(list(runs.values()), metric)
    if missing:
        raise PipelineError(f"--metric {metric}: " + lacking_note(missing, metric))


def by_model(metrics: dict[str, float]) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        found = _METRIC.match(key)
        if found:
            table.setdefault(found["model"], {})[found["what"]] = float(value)
    return table


def model_key(model: str) -> tuple[int, str]:
    return (FIRST_MODELS.index(model) if model in FIRST_MODELS else len(FIRST_MODELS), model)


def _cell(values: list[float], digits: int) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def summary_table(runs: dict[str, Run]) -> str:
    """Markdown: one row per model, mean ± sample std over `runs` of each metric."""
    per_run = [by_model(run.metrics) for run in runs.values()]
    models = sorted({m for r in per_run for m in r}, key=model_key)
    noise = sorted({w for r in per_run for t in r.values() for w in t if w.startswith("noise")},
                   key=lambda w: float(w[len("noise"):-len("_acc")]))
    noise = [w for w in noise if float(w[len("noise"):-len("_acc")]) > 0]
    older = lacking(list(runs.values()), "best_acc")
    best = [] if older else [("best_acc", TITLES["best_acc"], 2)]   # every run has it, or no column
    columns = [("acc", TITLES["acc"], 2), *best, ("top5", TITLES["top5"], 2), ("ece", TITLES["ece"], 4),
               *((w, f"acc @ noise {w[len('noise'):-len('_acc')]}", 2) for w in noise)]
    columns = [c for c in columns if any(c[0] in t for r in per_run for t in r.values())]
    first = next(iter(runs.values()))
    seeds = sorted({str((r.params.get("train") or {}).get("seed")) for r in runs.values()})
    lines = [f"{plural(len(runs), 'run')}: {', '.join(runs)} (mean ± sample std); "
             f"{describe(first.params)}, {plural(len(seeds), 'seed')}", "",
             "| model | " + " | ".join(title for _, title, _ in columns) + " | params |",
             "|---|" + "---|" * (len(columns) + 1)]
    for model in models:
        cells = [_cell([r[model][key] for r in per_run if key in r.get(model, {})], digits)
                 for key, _, digits in columns]
        params = next((r[model]["params"] for r in per_run if "params" in r.get(model, {})), None)
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {'—' if params is None else f'{params:,.0f}'} |")
    if best:
        lines += ["", f"{TITLES['best_acc']}: {OPTIMISTIC}; acc %: the evaluated checkpoint's "
                      "(evaluate.checkpoint, the last epoch by default)."]
    elif len(older) < len(runs):   # some runs have it: say which lack it
        lines += ["", f"note: {TITLES['best_acc']} left out: {lacking_note(older, 'best_acc')}"]
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
    return {model: values[metric] for model, values in by_model(metrics).items()
            if metric in values and not model.startswith("teacher_") and model != skip}


def paired_differences(runs: dict[str, Run], baseline_runs: dict[str, Run] | None,
                       baseline: str, metric: str = "acc") -> Paired:
    """`model_metric - baseline_metric` per seed, for every student model of `runs`; the baseline
    from the same experiment (`baseline_runs` None) or from `baseline_runs`' run of that seed."""
    require_metric(runs, metric)
    if baseline_runs is not None:
        require_metric(baseline_runs, metric)
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
                  dict(sorted(differences.items(), key=lambda item: model_key(item[0]))), unpaired)


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
    lines = [f"Paired differences in {metric_label(paired.metric)}: {what}, per seed "
             f"({plural(len(seeds), 'seed')}). Interval: 95 % Student t interval over seeds, "
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
