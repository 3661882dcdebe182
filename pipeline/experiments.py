"""DVC experiments as tables: the baseline beside each experiment, a seed study's means, or paired
differences to a baseline model.

Comparison (no names, no --match; or --compare with them): the baseline commit (HEAD), each
experiment (and the workspace when it holds a run that is neither), the params in which each
differs from the baseline (`tgd.alpha=0.5`: `distill.` is dropped, long values cut) and every
model's accuracy and ECE, at most 120 characters wide (models fold into further blocks);
`--metric` adds that metric's block after the accuracy (`—` and a note for runs without it):

    dvc exp run -n alpha05 -S distill.tgd.alpha=0.5
    python -m pipeline.experiments                       # the baseline and every experiment
    python -m pipeline.experiments --compare --match 'alpha*'
    python -m pipeline.experiments --metric best_acc     # and the best epoch's accuracy

Summary (mean ± sample std of accuracy, best-epoch accuracy, ECE and accuracy under noise, per
model, over runs; with `--metric` every run must have that metric):

    for s in 0 1 2; do dvc exp run -n seed$s -S train.seed=$s; done
    python -m pipeline.experiments seed0 seed1 seed2     # name the runs
    python -m pipeline.experiments --match 'seed*'       # or a glob over experiment names

  Only repeats of one setting are averaged. A run's setting is every param of its params.yaml but
  train.seed and those that say where and how fast it ran (train.device, num_workers, threads;
  topology.n_jobs, backend, scheduler, shards_per_task; data.shard_size; distill.teacher_cache;
  evaluate.batch_size, latency_repeats, latency_batch; export.batch_size). Runs of several
  settings are refused in one line naming the params that differ; `--ignore KEY` (repeatable; a
  section name ignores the section) leaves a param out of the setting, e.g. `--ignore data.root`
  for the same data set at two paths.

Paired differences to a baseline model (`--baseline`): every student model minus the baseline
on the same seed, with the mean over seeds, its 95 % Student t interval and the per-seed values:

    python -m pipeline.experiments --match 'seed*' --baseline kd
    python -m pipeline.experiments --match 'seed*' --baseline scratch --metric ece

  Without `--baseline-match` both sides come from the same experiment: one experiment is one
  seed, and its students share the teachers, the scratch initialisation and the seed, so
  `tgd_acc - kd_acc` is computed within each experiment. The matched experiments must be
  repeats of one setting with distinct `train.seed`s.

  With `--baseline-match GLOB` the baseline model's metric comes from other experiments, paired
  by `train.seed`: compare a variant against the default run of the same seed, e.g. tgd at
  alpha 0.9 against kd of the default runs, or the same method across two settings:

    python -m pipeline.experiments --match 'alpha0.9-*' --baseline-match 'base-*' --baseline kd
    python -m pipeline.experiments --match 'alpha0.9-*' --baseline-match 'base-*' --baseline tgd

  Each side must be repeats of one setting; the two sides may differ in anything (that is the
  variant: distill.*, topology.*, train.* ...) but `data.*` and `models.*`: a data set or model
  that differs between the sides is refused, naming it. Seeds present on one side only are left
  out, and the output says which. The interval is mean ± t(0.975, n-1) * s / sqrt(n), s the
  sample std of the n per-seed differences: it assumes the differences are roughly normal, and
  needs n >= 2.

`--metric` picks the metric suffix (acc, best_acc, top5, ece, noise0.1_acc, ...; default acc).
`acc` is the test accuracy of the evaluated checkpoint (evaluate.checkpoint: by default the last
epoch, chosen without looking at the test set); `best_acc` is the best-epoch test accuracy
(optimistic: epoch chosen on the test set), as the TGD authors' code reports it, and is labelled
so wherever it is shown.
An experiment evaluated before evaluate.json recorded best_acc is named in the error (or, in the
comparison and the summary, in a note).

The runs come from `dvc exp show --json -A` (experiments on every commit, so runs made before a
later commit are found), or from a saved copy (`--json FILE`). Only finished runs count; when none
is found the error says why: no experiments at all, none matching the pattern (with the names
seen), or matching ones still queued, running, failed or without a metrics file. Every error is
one line on stderr (exit status 1; 2 for a wrong option).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError
from pipeline.experiment_runs import (Run, baseline_rows, collect_runs, experiment_metrics,
                                      select)
from pipeline.experiment_settings import require_repeats, require_shared
from pipeline.experiment_stats import (Paired, paired_differences, paired_table, require_metric,
                                       summary_table, t_interval)
from pipeline.experiment_table import comparison, comparison_rows

__all__ = ["Paired", "Run", "collect_runs", "experiment_metrics", "load_exp_show", "main",
           "paired_differences", "paired_table", "select", "summary_table", "t_interval"]
DVC = ["dvc", "exp", "show", "--json", "-A"]


def _read_saved(json_path: str) -> Any:
    try:
        text = Path(json_path).read_text()
    except FileNotFoundError:
        raise PipelineError(f"--json {json_path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise PipelineError(f"--json {json_path}: cannot read it ({error})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise PipelineError(f"--json {json_path}: not JSON ({error}); save it with "
                            "`dvc exp show --json -A > FILE`") from None


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _ask_dvc() -> Any:
    try:
        done = subprocess.run(DVC, capture_output=True, text=True)
    except FileNotFoundError:
        raise PipelineError("`dvc` is not on PATH: install it (pip install -r requirements.txt), "
                            "or pass --json FILE (a saved `dvc exp show --json -A`)") from None
    if done.returncode != 0:
        why = _one_line(done.stderr or done.stdout) or f"exit status {done.returncode}"
        raise PipelineError(f"`{' '.join(DVC)}` failed: {why}")
    starts = [i for i in (done.stdout.find("["), done.stdout.find("{")) if i >= 0]
    try:
        return json.loads(done.stdout[min(starts):] if starts else done.stdout)
    except json.JSONDecodeError as error:
        raise PipelineError(f"`{' '.join(DVC)}` printed no JSON ({error}): "
                            f"{_one_line(done.stdout, 120)!r}") from None


def load_exp_show(json_path: str | None) -> list[dict[str, Any]]:
    """A saved `dvc exp show --json`, or a fresh one over all commits (`-A`)."""
    return _read_saved(json_path) if json_path else _ask_dvc()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):   # one line, not the usage block
        self.exit(2, f"error: {message} (python -m pipeline.experiments --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m pipeline.experiments", description=__doc__.split("\n\n")[0],
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("names", nargs="*", help="experiment names (dvc exp show)")
    parser.add_argument("--match", help="a glob over experiment names, e.g. 'seed*'")
    parser.add_argument("--compare", action="store_true",
                        help="each run beside the baseline (the default without names or --match)")
    parser.add_argument("--baseline", metavar="MODEL",
                        help="paired differences: each student model minus MODEL (kd, scratch, ...)")
    parser.add_argument("--baseline-match", metavar="GLOB",
                        help="take --baseline's metric from these experiments, paired by train.seed")
    parser.add_argument("--metric", help="metric suffix: acc (default), best_acc (best-epoch test accuracy, "
                        "optimistic: epoch chosen on the test set), top5, ece, noise0.1_acc, ...; "
                        "the paired differences' metric, a further block of the comparison")
    parser.add_argument("--ignore", action="append", default=[], metavar="KEY",
                        help="a param left out of a run's setting (repeatable), e.g. data.root")
    parser.add_argument("--json", help="a saved `dvc exp show --json` instead of running it")
    return parser


def _compare(exp_show: list[dict[str, Any]], runs: dict[str, Run], args) -> str:
    workspace, baseline = baseline_rows(exp_show)
    if args.names or args.match:
        experiments, pending = list(select(runs, args.names, args.match).values()), []
    else:
        ordered = sorted(runs.values(), key=lambda r: r.timestamp)
        experiments = [r for r in ordered if r.finished]
        pending = [r for r in ordered if not r.finished]
    rows = comparison_rows(workspace, baseline, experiments)
    if not rows:
        raise PipelineError("nothing to compare: no baseline commit and no experiments "
                            "(`dvc repro`, commit its results, then `dvc exp run -n NAME -S key=value`)")
    return comparison(rows, baseline, pending, metric=args.metric)


def _tables(args) -> str:
    if args.baseline_match and not args.baseline:
        raise PipelineError("--baseline-match needs --baseline MODEL")
    if args.compare and args.baseline:
        raise PipelineError("--compare shows each run as it is; it takes no --baseline")
    exp_show = load_exp_show(args.json)
    runs = collect_runs(exp_show)
    if args.compare or not (args.names or args.match or args.baseline):
        return _compare(exp_show, runs, args)
    chosen = select(runs, args.names, args.match)
    require_repeats(chosen, args.ignore, "--match runs" if args.baseline_match else "runs")
    if not args.baseline:
        if args.metric:
            require_metric(chosen, args.metric)
        return summary_table(chosen)
    others = None
    if args.baseline_match:
        others = select(runs, [], args.baseline_match)
        require_repeats(others, args.ignore, "--baseline-match runs")
        require_shared(chosen, others, args.ignore)
    paired = paired_differences(chosen, others, args.baseline, args.metric or "acc")
    return paired_table(paired, same_run=others is None)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        text = _tables(args)
    except PipelineError as error:
        sys.exit(f"error: {error}")
    print(text)


if __name__ == "__main__":
    main()
