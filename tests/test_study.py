"""pipeline.study: the study file, the DAG it plans, the scheduler, the report - and one slow run
of the real stage modules."""
import json
import os
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, TINY_PARAMS
from pipeline import layout
from pipeline.errors import PipelineError
from pipeline.study import Job, load_study_file, main, plan, report, resume, run_jobs

STUDY = {
    "params": {"train": {"epochs": 1}, "distill": {"methods": ["kd", "tgd"], "teacher_cache": False}},
    "studies": [{"name": "s", "seeds": [0, 1], "variants": [
        {"name": "base"},
        {"name": "a0.5", "params": {"distill": {"alpha": 0.5}}, "methods": ["tgd"]},
        {"name": "cub", "params": {"topology": {"image": {"filtrations": ["cubical"]}}}, "methods": ["tgd"]},
    ]}],
}


def write(tmp_path: Path, study: dict) -> tuple[Path, Path]:
    params, spec = tmp_path / "params.yaml", tmp_path / "study.yaml"
    params.write_text(yaml.safe_dump(TINY_PARAMS))
    spec.write_text(yaml.safe_dump(study))
    return spec, params


def test_plan_shares_stores_and_reruns_only_what_a_variant_reaches(tmp_path):
    spec, params = write(tmp_path, STUDY)
    the_plan = plan(load_study_file(spec, {}, params), tmp_path / "work")
    keys = [job.key for job in the_plan.jobs]
    stages = [job.stage for job in the_plan.jobs]
    assert stages.count("prepare") == 1                # one data section
    assert stages.count("topology") == 2               # sequence, and the cubical variant's
    for seed in (0, 1):
        base = f"s/seed{seed}/base"
        assert {f"{base}/train_teacher@image", f"{base}/train_teacher@topology", f"{base}/train_student",
                f"{base}/distill@kd", f"{base}/distill@tgd"} <= set(keys)
        # a distill-only variant trains nothing but its method; it links the base's models
        assert not [k for k in keys if k.startswith(f"s/seed{seed}/a0.5/train")]
        variant = the_plan.runs[("s", "a0.5", seed)]
        assert (variant / layout.model_dir("scratch")).resolve() == \
            (the_plan.runs[("s", "base", seed)] / layout.model_dir("scratch")).resolve()
        tgd = next(j for j in the_plan.jobs if j.key == f"s/seed{seed}/a0.5/distill@tgd")
        assert f"{base}/train_student" in tgd.deps and f"{base}/train_teacher@topology" in tgd.deps
        # a topology variant trains its own teacher 2 on its own stores, teacher 1 from the base
        assert f"s/seed{seed}/cub/train_teacher@topology" in keys
        assert f"s/seed{seed}/cub/train_teacher@image" not in keys
        written = yaml.safe_load((the_plan.runs[("s", "cub", seed)] / "params.yaml").read_text())
        assert written["topology"]["image"]["filtrations"] == ["cubical"]
        assert written["distill"]["methods"] == ["tgd"] and written["train"]["seed"] == seed
    # priority: the base of every seed, then each variant over the seeds; stores before their users
    assert stages[:2] == ["prepare", "topology"]
    assert max(keys.index(k) for k in keys if "/base/" in k) < min(keys.index(k) for k in keys if "/a0.5/" in k)
    assert max(keys.index(k) for k in keys if "/a0.5/" in k) < min(keys.index(k) for k in keys if "/cub/" in k)
    # every dependency is a job, planned before its dependent
    for i, job in enumerate(the_plan.jobs):
        assert all(keys.index(d) < i for d in job.deps), job.key


def test_a_store_resumes_whatever_the_order_of_the_seeds(tmp_path):
    """Adding a seed in front of a finished study must not re-run its stores (and with them every
    run): a store's params, and so its --resume identity, carry no seed."""
    identities = []
    for seeds in ([1, 2], [0, 1, 2]):
        study = {**STUDY, "studies": [{**STUDY["studies"][0], "seeds": seeds}]}
        spec, params = write(tmp_path, study)
        the_plan = plan(load_study_file(spec, {}, params), tmp_path / f"work-{len(seeds)}")
        identities.append({job.stage: job.identity() for job in the_plan.jobs if job.key.startswith("stores/")})
    assert identities[0] == identities[1] and set(identities[0]) == {"prepare", "topology"}


@pytest.mark.parametrize("study, culprit", [
    ({"studies": [{"name": "s", "seeds": [0], "variants": [{"name": "b"}, {"name": "v", "params": {"train": {"lr": 0.1}}}]}]},
     "train.lr"),
    ({"studies": [{"name": "s", "seeds": "0"}]}, "seeds"),
    ({"studies": [{"name": "s", "seeds": [0], "variants": [{"name": "b", "params": {"distill": {"alpha": 2.0}}}]}]},
     "distill.alpha"),
    ({"runs": []}, "unknown keys: runs"),
    ({"studies": [{"name": "s", "seeds": [0], "variants": [{"name": "b"}, {"name": "v", "method": ["tgd"]}]}]},
     "unknown keys method"),
    ({"studies": [{"name": "s", "seeds": [0], "variants": [
        {"name": "b"}, {"name": "v", "methods": ["tgd"], "kd_from": "w"}]}]}, "kd_from: 'w' is not another variant"),
])
def test_bad_study_files_fail_naming_the_key(tmp_path, study, culprit):
    spec, params = write(tmp_path, study)
    with pytest.raises(PipelineError, match=culprit.replace(".", r"\.")):
        load_study_file(spec, {}, params)


@pytest.fixture
def fake_stages(tmp_path, monkeypatch):
    """A module `fake` on PYTHONPATH: `python -m fake NAME SECONDS CODE` appends NAME's start and
    end times to runs.log, sleeps, exits with CODE."""
    (tmp_path / "fake.py").write_text(
        "import sys, time\nname, seconds, code = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])\n"
        "t0 = time.time(); time.sleep(seconds)\n"
        "open('runs.log', 'a').write(f'{name} {t0} {time.time()}\\n')\nsys.exit(code)\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    return tmp_path


def test_scheduler_respects_slots_dependencies_failures_and_deadline(fake_stages, tmp_path):
    cwd = tmp_path / "run"
    jobs = [Job("a", ["fake", "a", "0.6", "0"], cwd), Job("b", ["fake", "b", "0.6", "0"], cwd),
            Job("c", ["fake", "c", "0.1", "0"], cwd, ["a", "b"]),
            Job("bad", ["fake", "bad", "0", "3"], cwd), Job("after-bad", ["fake", "x", "0", "0"], cwd, ["bad"]),
            Job("soft", ["fake", "soft", "0", "0"], cwd, [], ["bad"])]   # runs once bad ended, however
    run_jobs(jobs, slots=2, deadline=None, logs=tmp_path / "logs", say=lambda _: None, poll=0.05)
    state = {j.key: j.state for j in jobs}
    assert state == {"a": "done", "b": "done", "c": "done", "bad": "failed", "after-bad": "skipped",
                     "soft": "done"}
    assert "needs bad (failed)" in jobs[4].note
    spans = {line.split()[0]: tuple(map(float, line.split()[1:])) for line in (cwd / "runs.log").read_text().splitlines()}
    assert spans["c"][0] >= max(spans["a"][1], spans["b"][1]) - 0.05     # after both its deps
    assert spans["bad"][0] >= min(spans["a"][1], spans["b"][1]) - 0.05   # a third job waited for a slot
    assert spans["soft"][0] >= spans["bad"][1] - 0.05

    slow = [Job("slow", ["fake", "slow", "30", "0"], cwd), Job("next", ["fake", "n", "0", "0"], cwd, ["slow"])]
    started = time.monotonic()
    run_jobs(slow, slots=1, deadline=time.monotonic() + 1.0, logs=tmp_path / "logs", say=lambda _: None, poll=0.05)
    assert time.monotonic() - started < 10
    assert [j.state for j in slow] == ["stopped", "skipped"]


def test_resume_skips_finished_jobs_until_the_first_that_must_rerun(fake_stages, tmp_path):
    cwd, markers = tmp_path / "run", tmp_path / "done"
    cwd.mkdir()
    (cwd / "params.yaml").write_text("train: {seed: 0}\n")
    chain = lambda: [Job("a", ["fake", "a", "0", "0"], cwd), Job("b", ["fake", "b", "0", "0"], cwd, ["a"]),
                     Job("c", ["fake", "c", "0", "0"], cwd, [], ["b"]), Job("d", ["fake", "d", "0", "0"], cwd)]
    quiet = dict(slots=1, deadline=None, logs=tmp_path / "logs", say=lambda _: None, poll=0.05, markers=markers)
    first = chain()
    run_jobs(first, **quiet)
    assert resume(chain(), markers) == 4
    again = chain()
    assert resume(again, markers) == 4 and again[1].seconds == first[1].seconds and again[1].note

    (markers / "b.json").unlink()   # b stopped before it finished: b and what follows it re-run
    rerun = chain()
    assert resume(rerun, markers) == 2 and [j.state for j in rerun] == ["done", "waiting", "waiting", "done"]
    run_jobs(rerun, **quiet)
    ran = [line.split()[0] for line in (cwd / "runs.log").read_text().splitlines()]
    assert ran[4:] == ["b", "c"]

    stale = json.loads((markers / "c.json").read_text())   # c older than b's new run: c re-runs
    stale["finished"] = 0.0
    (markers / "c.json").write_text(json.dumps(stale))
    assert [j.state for j in (lambda jobs: (resume(jobs, markers), jobs)[1])(chain())] == \
        ["done", "done", "waiting", "done"]

    (cwd / "params.yaml").write_text("train: {seed: 1}\n")   # other params: nothing is finished
    assert resume(chain(), markers) == 0


def test_report_only_runs_nothing_and_keeps_the_finished_report(tmp_path):
    spec, params = write(tmp_path, STUDY)
    work = tmp_path / "work"
    work.mkdir()
    (work / "results.md").write_text("a finished run's report\n")
    with pytest.raises(SystemExit) as stop:
        main([str(spec), "--work", str(work), "--params", str(params), "--report"])
    assert stop.value.code == 0
    text = (work / "results-so-far.md").read_text()
    assert "nothing run now" in text and "Not finished:" in text and "s/seed0/base/distill@kd: waiting" in text
    assert (work / "results.md").read_text() == "a finished run's report\n"
    assert not (work / "logs").exists() and not (work / "done").exists()   # no job started


def test_report_pairs_variants_with_the_base_by_seed(tmp_path):
    spec, params = write(tmp_path, STUDY)
    studies = load_study_file(spec, {}, params)
    the_plan = plan(studies, tmp_path / "work")
    accs = {("base", 0): {"scratch": 50, "kd": 60, "tgd": 61}, ("base", 1): {"scratch": 52, "kd": 64, "tgd": 63},
            ("a0.5", 0): {"scratch": 50, "tgd": 66}, ("a0.5", 1): {"scratch": 52, "tgd": 68}}
    for (variant, seed), models in accs.items():
        path = the_plan.runs[("s", variant, seed)] / layout.EVALUATE_METRICS
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({f"{m}_acc": v for m, v in models.items()}))
    for job in the_plan.jobs:
        job.state = "done"
        job.started, job.ended = 0.0, 2.0
    text, data = report(studies, the_plan, 12.0)
    base = text.split("### s / base")[1].split("### s / a0.5")[0]
    assert "| tgd | 2 | -0.00 |" in base or "| tgd | 2 | +0.00 |" in base     # (+1, -1) / 2
    variant = text.split("### s / a0.5")[1].split("### s / cub")[0]
    assert "| tgd | 2 | +5.00 |" in variant          # (66-60, 68-64) / 2: tgd at 0.5 - base kd
    assert "| tgd | 2 | +16.00 |" in variant         # - scratch of the same run
    assert "(0 of 2 seeds evaluated)" in text.split("### s / cub")[1]
    # without evaluate's metrics, the trainings' own summaries still count
    (the_plan.runs[("s", "cub", 0)] / layout.model_dir("tgd")).mkdir(parents=True)
    (the_plan.runs[("s", "cub", 0)] / layout.model_dir("tgd") / "summary.json").write_text('{"tgd_acc": 70.5}')
    assert "(0 of 2 seeds evaluated, 1 more in part" in report(studies, the_plan, 12.0)[0].split("### s / cub")[1]
    assert data["runs"]["s-a0.5-s1"]["tgd_acc"] == 68


def test_kd_from_pairs_a_variant_with_another_variants_kd(tmp_path):
    study = {**STUDY, "studies": [{"name": "s", "seeds": [0, 1], "variants": [
        {"name": "base"},
        {"name": "bm", "params": {"distill": {"kl_reduction": "batchmean"}}, "methods": ["kd", "tgd"]},
        {"name": "bm-a0.5", "params": {"distill": {"kl_reduction": "batchmean", "alpha": 0.5}}, "methods": ["tgd"],
         "kd_from": "bm"}]}]}
    spec, params = write(tmp_path, study)
    studies = load_study_file(spec, {}, params)
    the_plan = plan(studies, tmp_path / "work")
    accs = {("base", 0): {"kd": 60, "tgd": 61}, ("base", 1): {"kd": 64, "tgd": 63},
            ("bm", 0): {"kd": 50, "tgd": 55}, ("bm", 1): {"kd": 52, "tgd": 53},
            ("bm-a0.5", 0): {"tgd": 56}, ("bm-a0.5", 1): {"tgd": 58}}
    for (variant, seed), models in accs.items():
        path = the_plan.runs[("s", variant, seed)] / layout.EVALUATE_METRICS
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"scratch_acc": 40, **{f"{m}_acc": v for m, v in models.items()}}))
    text = report(studies, the_plan, 1.0)[0].split("### s / bm-a0.5")[1]
    assert "| tgd | 2 | +6.00 |" in text and "s-bm-a0.5-s0 − s-bm-s0" in text   # (56-50, 58-52) / 2, bm's kd


@pytest.mark.slow
def test_a_tiny_study_runs_the_real_stages(tmp_path):
    study = {"params": {"train": {"epochs": 1}, "distill": {"methods": ["kd", "tgd"], "teacher_cache": False},
                        "evaluate": {"latency_repeats": 1, "noise_std": [0.0]}},
             "studies": [{"name": "t", "seeds": [0], "variants": [
                 {"name": "base"}, {"name": "a0.5", "params": {"distill": {"alpha": 0.5}}, "methods": ["tgd"]}]}]}
    spec, params = write(tmp_path, study)
    work = tmp_path / "work"
    import subprocess
    done = subprocess.run([sys.executable, "-m", "pipeline.study", str(spec), "--work", str(work),
                           "--params", str(params), "--slots", "2"], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((work / "results.json").read_text())
    assert {j["state"] for j in results["jobs"]} == {"done"}
    assert {"t-base-s0", "t-a0.5-s0"} <= set(results["runs"])
    base, variant = results["runs"]["t-base-s0"], results["runs"]["t-a0.5-s0"]
    assert base["scratch_acc"] == variant["scratch_acc"]   # the variant evaluates the base's scratch
    assert "tgd_acc" in variant and "kd_acc" not in variant
    assert "Teacher 2's share" in (work / "results.md").read_text()


def test_a_distill_variant_reads_the_base_teacher_cache_a_topology_variant_builds_its_own(tmp_path):
    study = {**STUDY, "params": {**STUDY["params"], "distill": {"methods": ["kd", "tgd"], "teacher_cache": True}}}
    spec, params = write(tmp_path, study)
    the_plan = plan(load_study_file(spec, {}, params), tmp_path / "work")
    keys = {job.key: job for job in the_plan.jobs}
    assert "s/seed0/base/teachers" in keys and "s/seed0/a0.5/teachers" not in keys
    assert "s/seed0/base/teachers" in keys["s/seed0/a0.5/distill@tgd"].deps
    linked = the_plan.runs[("s", "a0.5", 0)] / layout.TEACHERS
    assert linked.is_symlink() and linked.resolve() == (the_plan.runs[("s", "base", 0)] / layout.TEACHERS).resolve()
    assert "s/seed0/cub/teachers" in keys   # another teacher 2: other stored outputs
