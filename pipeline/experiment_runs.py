"""The runs of `dvc exp show --json [-A]`: the baseline commit, the workspace and every experiment,
each with its params and metrics; picking runs by name or glob (pipeline.experiments)."""
from __future__ import annotations

import fnmatch
import sys
from dataclasses import dataclass
from typing import Any, Iterator

from pipeline.errors import PipelineError
from pipeline.layout import EVALUATE_METRICS as METRICS

SHAPE = "not the output of `dvc exp show --json`"


@dataclass(frozen=True)
class Run:
    """One row of `dvc exp show --json`: its state and, once finished, its metrics."""
    name: str
    commit: str                        # the baseline commit it hangs off (its own for a baseline)
    state: str                         # done | queued | running | failed
    params: dict[str, Any]             # params.yaml as the run saw it
    metrics: dict[str, float] | None   # data/metrics/evaluate.json; None while absent
    timestamp: str
    kind: str = "experiment"           # experiment | baseline | workspace

    @property
    def finished(self) -> bool:
        return self.state == "done" and bool(self.metrics)

    @property
    def why_unfinished(self) -> str:
        return self.state if self.state != "done" else f"no {METRICS.as_posix()}"


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PipelineError(f"{SHAPE}: {what} is a {type(value).__name__}, not an object")
    return value


def _listing(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PipelineError(f"{SHAPE}: {what} is a {type(value).__name__}, not a list")
    return value


def _contents(rev: dict[str, Any], what: str) -> tuple[dict[str, Any], dict[str, float] | None, str]:
    """(params, metrics or None, timestamp) of one revision's `data`."""
    data = _mapping(rev.get("data"), f"{what}'s data")
    metrics = _mapping(_mapping(data.get("metrics"), f"{what}'s metrics").get(METRICS.as_posix()),
                       f"{what}'s {METRICS.as_posix()}").get("data")
    params = _mapping(_mapping(data.get("params"), f"{what}'s params").get("params.yaml"),
                      f"{what}'s params.yaml").get("data")
    return (_mapping(params, f"{what}'s params.yaml data"),
            _mapping(metrics, f"{what}'s metrics data") or None, str(data.get("timestamp") or ""))


def _rows(exp_show: Any) -> list[dict[str, Any]]:
    if not isinstance(exp_show, list):
        raise PipelineError(f"{SHAPE}: expected a list of revisions, found a {type(exp_show).__name__}")
    for i, row in enumerate(exp_show):
        if not isinstance(row, dict) or not isinstance(row.get("rev"), str):
            raise PipelineError(f"{SHAPE}: revision {i} has no \"rev\"")
    return exp_show


def _runs(exp_show: list[dict[str, Any]]) -> Iterator[Run]:
    """Every experiment of `dvc exp show --json [-A]` (baselines and workspace excluded)."""
    for baseline in _rows(exp_show):
        for experiment in _listing(baseline.get("experiments"), f"{baseline['rev'][:7]}'s experiments"):
            experiment = _mapping(experiment, "an experiment")
            state = _mapping(experiment.get("executor"), "an executor").get("state") or "done"
            for rev in _listing(experiment.get("revs"), "an experiment's revs"):
                rev = _mapping(rev, "an experiment's rev")
                name = rev.get("name") or experiment.get("name") or str(rev.get("rev", "?"))[:7]
                params, metrics, timestamp = _contents(rev, f"experiment {name}")
                yield Run(name=str(name), commit=baseline["rev"][:7],
                          state="done" if state == "success" else str(state),
                          params=params, metrics=metrics, timestamp=timestamp)


def baseline_rows(exp_show: list[dict[str, Any]]) -> tuple[Run | None, Run | None]:
    """(the workspace, the newest commit: HEAD, the baseline), None where absent."""
    found: dict[str, Run] = {}
    for row in _rows(exp_show):
        kind = "workspace" if row["rev"] == "workspace" else "baseline"
        if kind in found:
            continue
        params, metrics, timestamp = _contents(row, row["rev"][:7])
        name = "workspace" if kind == "workspace" else str(row.get("name") or row["rev"][:7])
        found[kind] = Run(name=name, commit=row["rev"][:7], state="done", params=params,
                          metrics=metrics, timestamp=timestamp, kind=kind)
        if len(found) == 2:
            break
    return found.get("workspace"), found.get("baseline")


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


def pending_note(runs: list[Run]) -> str:
    return ", ".join(f"{r.name} ({r.why_unfinished})" for r in runs)


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
        which = pending_note([runs[n] for n in named_pending or pending])
        subject = "named" if named_pending else f"matching {match!r}"
        raise PipelineError(f"the experiments {subject} have no metrics yet (queued, running or "
                            f"failed): {which}; see `dvc queue status`")
    if pending:
        print("note: left out, no metrics yet: " + pending_note([runs[n] for n in pending]),
              file=sys.stderr)
    return {n: runs[n] for n in wanted if runs[n].finished}
