"""`python -m pipeline.study`: a seed study's whole DAG without DVC, its runs side by side.

DVC (`dvc exp run --queue`) is the way to run studies where the project is installed. This
runner is for a machine that has PyTorch but not DVC or Git state worth keeping, such as a lent
GPU box for one session: it runs the same stage modules (`python -m stages.<stage>`) as
subprocesses, several at once, and writes one markdown report. Nothing in it changes what a
stage computes: a run here and a `dvc repro` with the same params train the same models.

A study file (YAML) names the runs:

    params:            # overrides of params.yaml for every run (nested or dotted keys)
      train: {device: cuda, amp: true}
    studies:
      - name: paper
        params: {models: {teacher_image: wrn16_3}, train: {epochs: 20}}
        seeds: [0, 1, 2]
        variants:      # the first is the base: it trains the teachers and the scratch student
          - {name: base}
          - {name: a0.7-bm, params: {distill: {alpha: 0.7, kl_reduction: batchmean}}, methods: [tgd]}
          - {name: cubical, params: {topology: {image: {filtrations: [cubical]}}}, methods: [tgd]}
          - {name: a0.7-mean, params: {distill: {alpha: 0.7}}, methods: [tgd], kd_from: base}

`kd_from` names the variant whose kd a variant's students are paired with (default: the base;
a variant that trains kd itself is paired within its own runs).

Per (study, seed) the base variant runs teacher_image, teacher_topology, train_student, (the
teacher cache), distill@<method> for `distill.methods`, export and evaluate. Another variant
re-runs only what its overrides reach: `distill.*` the distillation of its `methods` (reading
the base's teacher cache when the base stores what they need); `topology.*` its own topology
stores (shared by every seed), teacher 2 and teacher cache as well.
Teacher 1 and the scratch student always come from the base (linked, not copied); a variant that
changes `data`, `models` or `train` is a study of its own. Stores are shared: one prepare per
`data` section, one topology per (`data`, `topology`).

Jobs start in the file's order (study, then variant, then seed) as soon as their inputs exist,
at most `--slots` at a time. At `--deadline` seconds the running ones are stopped and the report
says which runs are missing: a study that outlasts its machine still reports what finished.
Each finished job leaves a marker in `<work>/done/` (its command, a hash of its params.yaml, its
wall time); `--resume` skips a job whose marker matches and whose inputs were all resumed and older, so
a study stopped by a deadline or a closed session goes on where it stopped (a changed study file
re-runs what the change reaches). Code changes are not tracked: after one, run without --resume.
`--report` runs nothing and writes `<work>/results-so-far.md` from the markers (while a study runs).

    python -m pipeline.study studies/cpu-grid.yaml --work ../study --slots 2 \\
        --set data.root=$PWD/data/raw/cifar10-jpeg --deadline 6600 [--resume]

Report: `<work>/results.md` (per study and variant: the models' mean ± std over seeds, paired
differences to kd and to scratch with 95 % t intervals - pipeline.experiments' tables -, teacher
2's map share, and each stage's wall time) and `<work>/results.json`; job logs in `<work>/logs/`.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from pipeline import layout
from pipeline.errors import PipelineError
from pipeline.experiments import Run, paired_differences, paired_table, summary_table
from pipeline.params import DEFAULT_PARAMS, apply_overrides, flatten, read_yaml, validate
from pipeline.runtime import fingerprint

REPO = Path(__file__).resolve().parents[1]
VARIANT_SECTIONS = ("distill", "topology")   # what a variant may change; the rest is the study's
TEACHER_TOPOLOGY = "teacher_topology"


# -- the study file ------------------------------------------------------------------------------

@dataclass
class Variant:
    name: str
    params: dict[str, Any]           # the full params.yaml of this variant's runs (seed aside)
    methods: list[str]
    own_topology: bool               # its overrides reach topology.*: own stores and teacher 2
    kd_from: str | None = None       # the variant whose kd its students are paired with (default: the base)


@dataclass
class Study:
    name: str
    seeds: list[int]
    variants: list[Variant]          # variants[0] is the base


def load_study_file(path: Path, sets: dict[str, Any], base_params: Path = DEFAULT_PARAMS) -> list[Study]:
    """The studies of `path`, every variant's params merged and validated (errors name the key)."""
    spec = read_yaml(path)
    unknown = set(spec) - {"params", "studies"}
    if unknown or not spec.get("studies"):
        raise PipelineError(f"{path}: a study file holds `params` and a non-empty `studies` list"
                            + (f"; unknown keys: {', '.join(sorted(unknown))}" if unknown else ""))
    common = apply_overrides(read_yaml(base_params), spec.get("params") or {})
    studies, names = [], set()
    for i, entry in enumerate(spec["studies"]):
        where = f"{path}: studies[{i}]"
        name, seeds, variants = entry.get("name"), entry.get("seeds"), entry.get("variants") or [{"name": "base"}]
        if not name or name in names or not seeds or not all(isinstance(s, int) for s in seeds):
            raise PipelineError(f"{where}: needs a unique `name` and `seeds`, a list of integers")
        names.add(name)
        study_params = apply_overrides(common, entry.get("params") or {})
        built = [_variant(v, study_params, sets, f"{where}.variants[{j}]", j == 0) for j, v in enumerate(variants)]
        with_kd = {v.name for v in built if "kd" in v.methods}
        for j, variant in enumerate(built):
            if variant.kd_from is not None and (variant.kd_from not in with_kd or variant.kd_from == variant.name):
                raise PipelineError(f"{where}.variants[{j}].kd_from: {variant.kd_from!r} is not another variant "
                                    f"that trains kd (those that do: {', '.join(sorted(with_kd)) or 'none'})")
        studies.append(Study(name, list(seeds), built))
    return studies


def _variant(entry: dict[str, Any], study_params: dict[str, Any], sets: dict[str, Any], where: str,
             is_base: bool) -> Variant:
    """One variant's params: the study's, its own overrides, then the command line's `--set`s."""
    name, overrides = entry.get("name"), entry.get("params") or {}
    if not name:
        raise PipelineError(f"{where}: needs a `name`")
    unknown = set(entry) - {"name", "params", "methods", "kd_from"}
    if unknown:
        raise PipelineError(f"{where} ({name}): unknown keys {', '.join(sorted(unknown))}; "
                            "a variant has name, params, methods and kd_from")
    keys = list(flatten(overrides))
    outside = [k for k in keys if k.split(".")[0] not in VARIANT_SECTIONS]
    if outside and not is_base:
        raise PipelineError(f"{where} ({name}): a variant may change {' and '.join(VARIANT_SECTIONS)} "
                            f"keys only, not {', '.join(outside)}; make it a study of its own")
    params = apply_overrides(apply_overrides(study_params, overrides), sets)
    methods = entry.get("methods") or params["distill"]["methods"]
    params["distill"]["methods"] = list(methods)
    validate(params, f"{where} ({name})")
    return Variant(name, params, list(methods),
                   own_topology=not is_base and any(k.startswith("topology.") for k in keys),
                   kd_from=entry.get("kd_from"))


# -- jobs and their scheduling -----------------------------------------------------------------

@dataclass
class Job:
    """One stage command in one working folder."""
    key: str
    args: list[str]                  # after `python -m`
    cwd: Path
    deps: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)   # finished first, whether they worked or not
    state: str = "waiting"           # waiting | running | done | failed | stopped | skipped
    note: str = ""
    started: float | None = None
    ended: float | None = None
    process: subprocess.Popen | None = None
    log: Any = None                  # the open log file the process writes to
    earlier_seconds: float | None = None   # its wall time in the run that finished it (--resume)

    @property
    def seconds(self) -> float | None:
        if self.earlier_seconds is not None:
            return self.earlier_seconds
        return None if self.started is None or self.ended is None else self.ended - self.started

    def identity(self) -> str:
        """What a marker must match for --resume: the command and the params it ran with."""
        params = self.cwd / "params.yaml"
        text = params.read_text() if params.exists() else ""
        return hashlib.sha256(json.dumps([self.args, text]).encode()).hexdigest()[:16]

    @property
    def stage(self) -> str:
        return self.key.rsplit("/", 1)[-1]


def _env() -> dict[str, str]:
    # One BLAS/OpenMP thread per process: the runner's parallelism is its processes (train.threads
    # sets torch's own count; topology's workers are joblib processes).
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _marker(markers: Path, job: Job) -> Path:
    return markers / (job.key.replace("/", "__").replace("@", "_") + ".json")


def resume(jobs: list[Job], markers: Path) -> int:
    """Mark done the jobs that finished in an earlier run: a marker with the same identity, every
    dep and `after` job resumed as well and finished before it (a job that re-ran makes all that
    follows it re-run, even across several interrupted runs). Jobs come after their inputs in the
    list. Returns how many were resumed."""
    by_key = {job.key: job for job in jobs}
    finished: dict[str, float] = {}
    for job in jobs:
        marker = _marker(markers, job)
        if not marker.exists():
            continue
        record = json.loads(marker.read_text())
        inputs = (*job.deps, *job.after)
        if record.get("identity") == job.identity() and all(
                by_key[d].state == "done" and finished[d] <= record["finished"] for d in inputs):
            job.state, job.note, job.earlier_seconds = "done", "finished in an earlier run", record["seconds"]
            finished[job.key] = record["finished"]
    return len(finished)


def run_jobs(jobs: list[Job], slots: int, deadline: float | None, logs: Path,
             say: Callable[[str], None] = print, poll: float = 0.5, markers: Path | None = None) -> None:
    """Run `jobs` in list order as their deps finish (and their `after` jobs end, however), at
    most `slots` at once, until done or `deadline` (time.monotonic()); a failed job's dependents
    are skipped, naming it. A job that worked leaves a marker in `markers` for `resume`."""
    logs.mkdir(parents=True, exist_ok=True)
    by_key = {job.key: job for job in jobs}
    start = time.monotonic()
    clock = lambda: f"[{time.monotonic() - start:6.0f} s]"
    while True:
        for job in jobs:   # the dependents of a failure never run
            bad = [d for d in job.deps if by_key[d].state in ("failed", "skipped", "stopped")]
            if job.state == "waiting" and bad:
                job.state, job.note = "skipped", f"needs {bad[0]} ({by_key[bad[0]].state})"
        running = [j for j in jobs if j.state == "running"]
        for job in running:
            code = job.process.poll()
            if code is not None:
                job.ended, job.state = time.monotonic(), "done" if code == 0 else "failed"
                job.log.close()
                if code == 0 and markers is not None:
                    markers.mkdir(parents=True, exist_ok=True)
                    _marker(markers, job).write_text(json.dumps({
                        "key": job.key, "identity": job.identity(), "seconds": job.seconds, "finished": time.time()}))
                say(f"{clock()} {job.state:>6} {job.key} ({job.seconds:.0f} s)")
                if code:
                    job.note = f"exit {code}; log {_log(logs, job)}"
                    say("".join(_log(logs, job).read_text().splitlines(keepends=True)[-15:]))
        if deadline is not None and time.monotonic() > deadline:
            _stop_all(jobs, say, clock)
            return
        running = [j for j in jobs if j.state == "running"]
        for job in jobs:
            if len(running) >= slots:
                break
            if job.state == "waiting" and all(by_key[d].state == "done" for d in job.deps) and \
                    all(by_key[a].state not in ("waiting", "running") for a in job.after):
                _launch(job, logs)
                running.append(job)
                say(f"{clock()} start  {job.key}")
        if not any(j.state in ("running", "waiting") for j in jobs):
            return
        time.sleep(poll)


def _log(logs: Path, job: Job) -> Path:
    return logs / (job.key.replace("/", "__").replace("@", "_") + ".log")


def _launch(job: Job, logs: Path) -> None:
    job.cwd.mkdir(parents=True, exist_ok=True)
    job.log = _log(logs, job).open("w")
    job.process = subprocess.Popen([sys.executable, "-m", *job.args], cwd=job.cwd, env=_env(),
                                   stdout=job.log, stderr=subprocess.STDOUT, start_new_session=True)
    job.started, job.state = time.monotonic(), "running"


def _stop_all(jobs: list[Job], say: Callable[[str], None], clock: Callable[[], str]) -> None:
    for job in jobs:
        if job.state == "running":
            os.killpg(job.process.pid, signal.SIGTERM)
            job.process.wait()
            job.log.close()
            job.ended, job.state, job.note = time.monotonic(), "stopped", "stopped at the deadline"
            say(f"{clock()} stopped {job.key} at the deadline")
        elif job.state == "waiting":
            job.state, job.note = "skipped", "not started before the deadline"


# -- the DAG of a study --------------------------------------------------------------------------

@dataclass
class Plan:
    jobs: list[Job]
    runs: dict[tuple[str, str, int], Path]   # (study, variant, seed): the folder evaluate writes in


def _write_params(folder: Path, params: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(target.resolve(), target_is_directory=True)


def plan(studies: list[Study], work: Path) -> Plan:
    """Folders, params files, links between folders and the jobs, in priority order: per study
    each variant over all its seeds, the base first, so that the base's paired table completes
    first, then each variant's; a shared store comes just before its first user."""
    jobs: list[Job] = []
    runs: dict[tuple[str, str, int], Path] = {}
    stores: dict[str, str] = {}   # fingerprint of a shared store's params -> its job key

    def shared(kind: str, params: dict[str, Any], sections: tuple[str, ...], args: list[str],
               deps: list[str], inputs: Path | None) -> tuple[str, Path]:
        key = fingerprint(kind, [params[s] for s in sections])
        folder = work / "stores" / f"{kind}-{key}"
        if key not in stores:
            _write_params(folder, params)
            if inputs is not None:
                _link(inputs, folder / layout.PREPARED)
            stores[key] = f"stores/{kind}-{key}/{kind}"
            jobs.append(Job(stores[key], args, folder, deps))
        return stores[key], folder

    for study in studies:
        for index, variant in enumerate(study.variants):
            for seed in study.seeds:
                base_dir = work / study.name / f"seed{seed}" / study.variants[0].name
                params = apply_overrides(variant.params, {"train": {"seed": seed}})
                # a store's params carry no seed (its stages read none), so its --resume identity
                # does not change with the order of the seeds
                prep_job, prep_dir = shared("prepare", variant.params, ("data",), ["stages.prepare"], [], None)
                topo_job, topo_dir = shared("topology", variant.params, ("data", "topology"), ["stages.topology"],
                                            [prep_job], prep_dir / layout.PREPARED)
                here = work / study.name / f"seed{seed}" / variant.name
                _write_params(here, params)
                _link(prep_dir / layout.PREPARED, here / layout.PREPARED)
                _link(topo_dir / layout.TOPOLOGY, here / layout.TOPOLOGY)
                prefix = f"{study.name}/seed{seed}/{variant.name}"
                base_prefix = f"{study.name}/seed{seed}/{study.variants[0].name}"
                trained = {}   # model -> the job that trains it
                own = ["teacher_image", TEACHER_TOPOLOGY, "scratch"] if index == 0 else \
                    ([TEACHER_TOPOLOGY] if variant.own_topology else [])
                for model in ("teacher_image", TEACHER_TOPOLOGY, "scratch"):
                    if model in own:
                        args = ["stages.train_student"] if model == "scratch" else \
                            ["stages.train_teacher", model.split("_", 1)[1]]
                        deps = [topo_job] if model == TEACHER_TOPOLOGY else [prep_job]
                        jobs.append(Job(f"{prefix}/{_stage_name(model)}", args, here, deps))
                        trained[model] = f"{prefix}/{_stage_name(model)}"
                    else:   # the base's model, linked with its curves
                        _link(base_dir / layout.model_dir(model), here / layout.model_dir(model))
                        _link(base_dir / layout.live_dir(model), here / layout.live_dir(model))
                        trained[model] = f"{base_prefix}/{_stage_name(model)}"
                teacher_jobs = [trained["teacher_image"], trained[TEACHER_TOPOLOGY]]
                distill_deps = [*teacher_jobs, trained["scratch"], topo_job]
                if params["distill"]["teacher_cache"]:
                    base = study.variants[0]
                    if index and not variant.own_topology and set(variant.methods) <= set(base.methods) \
                            and base.params["distill"]["teacher_cache"]:
                        # the same teachers on the same batches: the base's stored outputs serve
                        # (the cache's identity is teachers, inputs and batches, not the loss weights)
                        _link(base_dir / layout.TEACHERS, here / layout.TEACHERS)
                        distill_deps.append(f"{base_prefix}/teachers")
                    else:
                        jobs.append(Job(f"{prefix}/teachers", ["stages.teachers"], here, [*teacher_jobs, topo_job]))
                        distill_deps.append(f"{prefix}/teachers")
                distills = [f"{prefix}/distill@{m}" for m in variant.methods]
                jobs += [Job(key, ["stages.distill", m], here, distill_deps)
                         for key, m in zip(distills, variant.methods)]
                models = [*trained.values(), *distills]
                jobs.append(Job(f"{prefix}/export", ["stages.export"], here, models))
                # evaluate reports the ONNX checks when export worked, and the models regardless
                jobs.append(Job(f"{prefix}/evaluate", ["stages.evaluate"], here, models, [f"{prefix}/export"]))
                runs[(study.name, variant.name, seed)] = here
    return Plan(jobs, runs)


def _stage_name(model: str) -> str:
    """The dvc.yaml stage that trains `model`."""
    return {"scratch": "train_student"}.get(model, f"train_teacher@{model.split('_', 1)[-1]}")


# -- the report ----------------------------------------------------------------------------------

def _finished_runs(study: Study, variant: Variant, folders: dict[tuple[str, str, int], Path]) -> dict[str, Run]:
    """The runs with metrics: evaluate's, or, when evaluate did not finish, the trainings' own
    last-epoch test accuracies (summary.json) of every model that finished."""
    found = {}
    for seed in study.seeds:
        folder = folders[(study.name, variant.name, seed)]
        metrics_file = folder / layout.EVALUATE_METRICS
        if metrics_file.exists():
            metrics = json.loads(metrics_file.read_text())
        else:
            metrics = {}
            for summary in sorted((folder / layout.MODELS).glob("*/summary.json")):
                name = summary.parent.name
                metrics[f"{name}_acc"] = json.loads(summary.read_text())[f"{name}_acc"]
        if metrics:
            name = f"{study.name}-{variant.name}-s{seed}"
            found[name] = Run(name, "", "done", {"train": {"seed": seed}}, metrics, "")
    return found


def _shares(folder: Path) -> dict[str, float]:
    """Teacher 2's share of tgd's merged maps in the last epoch, per group (DVCLive's metrics)."""
    metrics = folder / layout.live_dir("tgd") / "metrics.json"
    if not metrics.exists():
        return {}
    return {k: v for k, v in json.loads(metrics.read_text()).items() if "share" in k}


def _paired(runs: dict[str, Run], baseline_runs: dict[str, Run] | None, baseline: str) -> str:
    try:
        paired = paired_differences(runs, baseline_runs, baseline)
    except PipelineError as error:
        return f"(no paired table: {error})"
    return paired_table(paired, same_run=baseline_runs is None)


def report(studies: list[Study], the_plan: Plan, wall: float | None) -> tuple[str, dict[str, Any]]:
    """The markdown report and its data; `wall` None: a report of earlier runs (--report)."""
    lines = ["# Study report (pipeline.study)", "",
             ("What earlier runs finished (nothing run now)" if wall is None else f"Wall time {wall:.0f} s") +
             "; jobs: " + ", ".join(
                 f"{sum(j.state == s for j in the_plan.jobs)} {s}"
                 for s in ("done", "failed", "stopped", "skipped") if any(j.state == s for j in the_plan.jobs))]
    data: dict[str, Any] = {"wall_s": wall, "jobs": [
        {"key": j.key, "state": j.state, "seconds": j.seconds, "note": j.note} for j in the_plan.jobs],
        "runs": {}}
    for study in studies:
        base = study.variants[0]
        base_runs = _finished_runs(study, base, the_plan.runs)
        lines += ["", f"## {study.name}", "", _params_line(base.params)]
        for variant in study.variants:
            runs = _finished_runs(study, variant, the_plan.runs)
            data["runs"].update({n: r.metrics for n, r in runs.items()})
            evaluated = sum((the_plan.runs[(study.name, variant.name, seed)] / layout.EVALUATE_METRICS).exists()
                            for seed in study.seeds)
            partial = f", {len(runs) - evaluated} more in part (trainings' own metrics)" if len(runs) > evaluated else ""
            lines += ["", f"### {study.name} / {variant.name} ({evaluated} of {len(study.seeds)} seeds evaluated{partial})"]
            if variant is not base:
                lines.append("Overrides of the base: " + ", ".join(
                    f"`{k}={v}`" for k, v in _diff(base.params, variant.params).items()))
            if not runs:
                continue
            lines += ["", summary_table(runs), "", _paired(runs, None, "scratch")]
            # tgd - kd within the run when the variant trains its own kd (same KL reduction), else
            # against the kd of the same seed in `kd_from` (default: the base)
            own_kd = variant is base or "kd" in variant.methods
            kd_runs = base_runs if variant.kd_from is None else _finished_runs(
                study, next(v for v in study.variants if v.name == variant.kd_from), the_plan.runs)
            lines += ["", _paired(runs, None if own_kd else kd_runs, "kd")]
            shares = {seed: _shares(the_plan.runs[(study.name, variant.name, seed)]) for seed in study.seeds}
            shares = {s: v for s, v in shares.items() if v}
            if shares:
                keys = sorted({k for v in shares.values() for k in v})
                lines += ["", "Teacher 2's share of tgd's merged similarity maps (last epoch), per seed:", "",
                          "| seed | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
                lines += [f"| {s} | " + " | ".join(f"{v.get(k, float('nan')):.4f}" for k in keys) + " |"
                          for s, v in shares.items()]
    lines += ["", "## Wall time per stage (seconds; median [min-max] over the runs that finished)", "",
              "| stage | runs | median | range |", "|---|---|---|---|"]
    by_stage: dict[str, list[float]] = {}
    for job in the_plan.jobs:
        if job.state == "done":
            study_name = job.key.split("/")[0]
            by_stage.setdefault(f"{study_name}: {job.stage}", []).append(job.seconds)
    for stage, seconds in by_stage.items():
        lines.append(f"| {stage} | {len(seconds)} | {statistics.median(seconds):.1f} | "
                     f"{min(seconds):.1f}-{max(seconds):.1f} |")
    missing = [j for j in the_plan.jobs if j.state != "done"]
    if missing:
        lines += ["", "Not finished:", ""] + [f"- {j.key}: {j.state} ({j.note})" for j in missing]
    return "\n".join(lines) + "\n", data


def _params_line(params: dict[str, Any]) -> str:
    m, t, d = params["models"], params["train"], params["distill"]
    return (f"Data `{params['data']['name']}`; teachers {m['teacher_image']} / {m['teacher_topology']}, "
            f"student {m['student']}; {t['epochs']} epochs of {t['optimizer']} at lr {t['lr']}, batch "
            f"{t['batch_size']}, device {t['device']}, amp {t['amp']}; distill alpha {d['alpha']}, "
            f"kl_reduction {d['kl_reduction']}, methods {', '.join(d['methods'])}; filtrations "
            f"{params['topology']['image']['filtrations']}.")


def _diff(base: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    a, b = flatten(base), flatten(other)
    return {k: v for k, v in b.items() if a.get(k) != v}


# -- command line --------------------------------------------------------------------------------

def _parse_sets(items: list[str]) -> dict[str, Any]:
    sets = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise PipelineError(f"--set {item!r}: expected KEY=VALUE, e.g. data.root=/data/cifar10-jpeg")
        sets[key] = yaml.safe_load(value)
    return sets


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.study", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("file", type=Path, help="a study file (YAML), e.g. studies/device-h200.yaml")
    parser.add_argument("--work", type=Path, required=True, help="folder for the runs, stores and report")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a params key for every run, after the study file (as dvc exp run -S)")
    parser.add_argument("--slots", type=int, default=1, help="stage processes at once (default 1)")
    parser.add_argument("--deadline", type=float, default=None,
                        help="seconds after which running stages are stopped and the report written")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="the params.yaml overridden")
    parser.add_argument("--resume", action="store_true",
                        help="skip the jobs an earlier run in --work finished with the same command and params")
    parser.add_argument("--report", action="store_true",
                        help="run nothing: report what earlier runs in --work finished (their markers), "
                             "e.g. while a study is still running")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        studies = load_study_file(args.file, _parse_sets(args.set), args.params)
        the_plan = plan(studies, args.work)
    except PipelineError as error:
        sys.exit(f"error: {error}")
    markers = args.work / "done"
    print(f"study: {len(the_plan.jobs)} jobs, {len(the_plan.runs)} runs, {args.slots} at a time, in {args.work}")
    if args.resume or args.report:
        print(f"resume: {resume(the_plan.jobs, markers)} jobs finished in an earlier run")
    if not args.report:
        deadline = None if args.deadline is None else started + args.deadline
        run_jobs(the_plan.jobs, args.slots, deadline, args.work / "logs", markers=markers)
    text, data = report(studies, the_plan, None if args.report else time.monotonic() - started)
    name = "results-so-far" if args.report else "results"   # never overwrites a finished run's report
    (args.work / f"{name}.md").write_text(text)
    (args.work / f"{name}.json").write_text(json.dumps(data, indent=1))
    print(text)
    sys.exit(1 if any(j.state == "failed" for j in the_plan.jobs) else 0)


if __name__ == "__main__":
    main()
