"""The real DVC workflow on tiny data: `dvc repro`, then an experiment that re-runs only what it must."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, tiny_params

pytestmark = pytest.mark.skipif(shutil.which("dvc") is None and not Path(sys.executable).with_name("dvc").exists(),
                                reason="dvc is not installed")
PROJECT_FILES = ["pipeline", "stages", "dvc.yaml", ".dvc/config", ".dvcignore", ".gitignore"]


def sh(cwd: Path, *args: str) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A fresh git + DVC project holding this repository's pipeline and tiny params."""
    root = tmp_path_factory.mktemp("project")
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, root / name)
    params = tiny_params()
    params["train"]["epochs"] = 1
    params["distill"]["methods"] = ["kd", "tgd"]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(root, "git", "init", "-q")
    sh(root, "git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    sh(root, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny project")
    return root


def test_repro_then_experiment_reruns_only_downstream_stages(project):
    first = sh(project, "dvc", "repro")
    for stage in ("prepare", "topology", "train_teacher@image", "train_teacher@topology",
                  "train_student", "distill@kd", "distill@tgd", "evaluate"):
        assert f"Running stage '{stage}'" in first
    metrics = json.loads((project / "data/metrics/evaluate.json").read_text())
    assert {"tgd_acc", "kd_acc", "scratch_acc", "teacher_topology_acc"} <= set(metrics)

    status = sh(project, "dvc", "status")
    assert "up to date" in status

    sh(project, "git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    sh(project, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "baseline")
    second = sh(project, "dvc", "exp", "run", "-S", "distill.alpha=0.5")
    for stage in ("prepare", "topology", "train_teacher@image", "train_teacher@topology", "train_student"):
        assert f"Running stage '{stage}'" not in second, stage
    for stage in ("distill@tgd", "distill@kd", "evaluate"):
        assert f"Running stage '{stage}'" in second, stage

    shown = sh(project, "dvc", "exp", "show", "--json")
    table = json.loads(shown[min(i for i in (shown.find("["), shown.find("{")) if i >= 0):])
    text = json.dumps(table)
    assert "distill" in text and "tgd_acc" in text and "0.5" in text
