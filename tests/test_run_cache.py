"""DVC's run cache works for every stage: after experiments A and B, an experiment C whose
teacher 1 and scratch student have A's inputs restores them from the run cache instead of
training them again (a stage with a `cache: false` output would run again: none has one)."""
import yaml

from tests.conftest import REPO
from tests.test_dvc import kd_tgd_params, make_project, pytestmark, sh  # noqa: F401  (slow, dvc)

CACHED = "Stage '{}' is cached - skipping run, checking out outputs"


def test_no_stage_switches_the_run_cache_off():
    """Only metrics and plots may be kept in Git (`cache: false`): DVC keeps their stages'
    run cache; a plain output with `cache: false` would disable it."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    uncached = [(name, out) for name, stage in stages.items() for entry in stage.get("do", stage).get("outs", [])
                if isinstance(entry, dict) for out, spec in entry.items() if spec.get("cache") is False]
    assert uncached == [("source", "data/source.json")]  # always_changed: it runs on every repro by design


def test_an_experiment_restores_the_stages_an_earlier_one_ran(tmp_path):
    project = make_project(tmp_path / "project", kd_tgd_params())
    sh(project, "dvc", "repro")
    sh(project, "git", "add", "-A")
    sh(project, "git", "commit", "-qm", "baseline")
    sh(project, "dvc", "exp", "run", "-n", "A", "-S", "train.lr=0.001")
    sh(project, "dvc", "exp", "run", "-n", "B", "-S", "train.lr=0.002")
    # C: A's training params, and another teacher 2: only what teacher 2 reaches may run
    log = sh(project, "dvc", "exp", "run", "-n", "C", "-S", "train.lr=0.001",
             "-S", "models.teacher_topology=wrn16_1")
    for stage in ("train_teacher@image", "train_student"):
        assert CACHED.format(stage) in log, stage
        assert f"Running stage '{stage}'" not in log, stage
    for stage in ("train_teacher@topology", "teachers", "distill@tgd"):
        assert f"Running stage '{stage}'" in log, stage
