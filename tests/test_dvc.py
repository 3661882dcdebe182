"""The real DVC workflow on tiny data: `dvc repro`, then an experiment that re-runs only what it must."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.experiments import experiment_metrics
from tests.conftest import REPO, tiny_params

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("dvc") is None and not Path(sys.executable).with_name("dvc").exists(),
                                 reason="dvc is not installed")]
PROJECT_FILES = ["pipeline", "stages", "dvc.yaml", ".dvc/config", ".dvc/plots", ".dvcignore", ".gitignore"]


def sh(cwd: Path, *args: str) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def make_project(root: Path, params: dict, extra: tuple[str, ...] = ()) -> Path:
    """A fresh git + DVC project at `root`: this repository's pipeline (PROJECT_FILES and
    `extra`), `params` as params.yaml, one commit."""
    for name in [*PROJECT_FILES, *extra]:
        source, target = REPO / name, root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(root, "git", "init", "-q")
    # DVC commits experiments itself: give the repository an identity (CI may have no global one)
    sh(root, "git", "config", "user.name", "tgd-pipeline tests")
    sh(root, "git", "config", "user.email", "tests@example.invalid")
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", "tiny project")
    return root


def kd_tgd_params() -> dict:
    """Tiny params for DVC runs: one epoch, kd and tgd."""
    params = tiny_params()
    params["train"]["epochs"] = 1
    params["distill"]["methods"] = ["kd", "tgd"]
    return params


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A fresh git + DVC project holding this repository's pipeline and tiny params."""
    return make_project(tmp_path_factory.mktemp("project"), kd_tgd_params())


def test_repro_then_experiment_reruns_only_downstream_stages(project):
    first = sh(project, "dvc", "repro")
    for stage in ("prepare", "topology", "topology_figure", "train_teacher@image", "train_teacher@topology",
                  "train_student", "teachers", "distill@kd", "distill@tgd", "export",
                  "evaluate"):
        assert f"Running stage '{stage}'" in first
    assert "tgd: teacher outputs from data/teachers" in first  # the distill stages read the cache
    metrics = json.loads((project / "data/metrics/evaluate.json").read_text())
    assert {"tgd_acc", "kd_acc", "scratch_acc", "teacher_topology_acc"} <= set(metrics)
    assert (project / "data/export/tgd/model.onnx").stat().st_size > 10_000
    assert "ONNX students: data/export/<model>/model.onnx." in first  # the closing line
    # one definition per metric: only evaluate.json is declared; timings live apart
    shown = sh(project, "dvc", "metrics", "show")
    assert "data/metrics/evaluate.json" in shown and "data/live" not in shown and "timing" not in shown
    assert "tgd_onnx_b1_ms" in json.loads((project / "data/metrics/timing.json").read_text())
    plots = sh(project, "dvc", "plots", "show", "--json")
    rendered = json.loads(plots[plots.index("{"):])
    # the evaluate stage's seven comparison figures (two Vega charts, the PNGs of their series and
    # three more PNGs) and the topology_figure stage's persistence images
    assert not rendered.get("errors") and len(rendered["data"]) == 8, rendered.get("errors")
    assert "data/plots/persistence_images.png" in rendered["data"]

    status = sh(project, "dvc", "status")
    assert status.split() == ["source:", "always", "changed"]  # DVC re-runs the fingerprint to know; nothing else

    sh(project, "git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    sh(project, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "baseline")
    second = sh(project, "dvc", "exp", "run", "-n", "alpha05", "-S", "distill.tgd.alpha=0.5")
    # tgd's alpha is tgd's own key, never kd's: only tgd's student is trained again.
    # ... and no teacher runs: the teachers stage is not re-run, distill@tgd reads its outputs.
    for stage in ("prepare", "topology", "topology_figure", "train_teacher@image", "train_teacher@topology",
                  "train_student", "teachers", "distill@kd"):
        assert f"Running stage '{stage}'" not in second, stage
    for stage in ("distill@tgd", "export", "evaluate"):
        assert f"Running stage '{stage}'" in second, stage
    assert "tgd: teacher outputs from data/teachers" in second

    # Both runs with their metrics: the baseline commit's and the experiment's own (its commit
    # must carry data/metrics, which DVC keeps in Git), not just the workspace's.
    shown = sh(project, "dvc", "exp", "show", "--json")
    table = json.loads(shown[min(i for i in (shown.find("["), shown.find("{")) if i >= 0):])
    baseline = next(row for row in table if row["rev"] != "workspace")
    assert "tgd_acc" in baseline["data"]["metrics"]["data/metrics/evaluate.json"]["data"]
    runs = experiment_metrics(table)
    assert "alpha05" in runs and {"tgd_acc", "kd_acc", "scratch_acc"} <= set(runs["alpha05"])
    experiment = next(rev for exp in baseline["experiments"] for rev in exp["revs"] if rev["name"] == "alpha05")
    assert experiment["data"]["params"]["params.yaml"]["data"]["distill"]["tgd"]["alpha"] == 0.5
    sh(project, "git", "checkout", "-q", "--", ".")  # the workspace back to the baseline
    sh(project, "dvc", "exp", "apply", "alpha05")
    applied = json.loads((project / "data/metrics/evaluate.json").read_text())
    assert applied == runs["alpha05"]
