"""The README's first steps after `dvc repro`, as written there, in a fresh git + DVC project:
the baseline is kept before the first experiment, so `dvc exp show` carries both runs' metrics."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.experiments import experiment_metrics
from tests.conftest import REPO
from tests.test_dvc import kd_tgd_params, make_project, sh

SECTION = "## Keep the baseline, then experiment"
METRICS = "data/metrics/evaluate.json"


def readme_steps() -> list[str]:
    """The command lines of the first bash block under SECTION in README.md."""
    text = (REPO / "README.md").read_text()
    assert SECTION in text, f"README.md lost its section {SECTION!r}"
    block = re.search(r"```bash\n(.*?)```", text.split(SECTION, 1)[1], re.S)
    assert block, f"no bash block under {SECTION!r}"
    return [line.strip() for line in block[1].splitlines() if line.strip() and not line.startswith("#")]


def test_readme_keeps_the_baseline_right_after_repro():
    steps = readme_steps()
    assert steps[0] == "dvc repro"
    keep = steps[1]
    assert ("git commit" in keep and "dvc.lock" in keep and "data/metrics" in keep) or "dvc exp save" in keep, keep
    assert any(step.startswith("dvc exp run") for step in steps[2:])


def _exp_show(project: Path) -> list[dict]:
    done = subprocess.run(["dvc", "exp", "show", "--json"], cwd=project, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("dvc") is None and not Path(sys.executable).with_name("dvc").exists(),
                    reason="dvc is not installed")
def test_walking_the_readme_keeps_the_baseline_next_to_the_experiment(tmp_path):
    project = tmp_path / "clone"
    params = kd_tgd_params()
    make_project(project, params, extra=(".dvc/.gitignore",))  # what a clone holds of DVC's own files

    steps = readme_steps()
    experiment_step = next(step for step in steps if step.startswith("dvc exp run"))
    logs = {}
    for step in steps:
        logs[step] = sh(project, "bash", "-c", step)
        if step == steps[1]:
            # The keep step left nothing of the run uncommitted: the README's `git add` list is complete.
            assert sh(project, "git", "status", "--porcelain").strip() == ""
    # Each distill@method depends only on the keys it reads: an alpha change re-runs tgd, not kd.
    assert "Running stage 'distill@tgd'" in logs[experiment_step]
    assert "Running stage 'distill@kd'" not in logs[experiment_step]

    table = _exp_show(project)
    baseline = next(row for row in table if row["rev"] != "workspace")
    baseline_metrics = baseline["data"]["metrics"][METRICS]["data"]
    assert {"tgd_acc", "kd_acc"} <= set(baseline_metrics)
    assert baseline["data"]["params"]["params.yaml"]["data"]["distill"]["tgd"]["alpha"] == params["distill"]["tgd"]["alpha"]

    name, key, value = re.search(r"-n (\S+) -S (\S+)=(\S+)", experiment_step).groups()
    runs = experiment_metrics(table)
    assert list(runs) == [name] and {"tgd_acc", "kd_acc"} <= set(runs[name])
    experiment = next(rev for exp in baseline["experiments"] for rev in exp["revs"] if rev["name"] == name)
    node = experiment["data"]["params"]["params.yaml"]["data"]
    for part in key.split("."):
        node = node[part]
    assert node == yaml.safe_load(value)

    # Back to the baseline in the workspace, as the README says.
    sh(project, "bash", "-c", "git checkout -- . && dvc checkout")
    assert json.loads((project / METRICS).read_text()) == baseline_metrics

    # A later commit: pipeline.experiments still finds the run, which hangs off the earlier one.
    sh(project, "git", "commit", "-q", "--allow-empty", "-m", "a later commit")
    table = sh(project, sys.executable, "-m", "pipeline.experiments", "--match", name[:3] + "*",
               "--baseline", "kd")
    assert f"seed {params['train']['seed']}: {name}" in table
    tgd = runs[name]["tgd_acc"] - runs[name]["kd_acc"]
    assert f"| tgd | 1 | {tgd:+.2f} | — | {tgd:+.2f} |" in table
