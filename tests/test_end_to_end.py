"""The whole DAG's library calls on tiny data: prepare -> topology -> teachers -> students -> evaluate."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pipeline.checkpoint import load_model, read_checkpoint
from pipeline.errors import CheckpointError
from pipeline.layout import PREPARED, TOPOLOGY
from pipeline.params import load_params, section
from pipeline.prepare import prepare
from pipeline.evaluation import evaluate_all
from pipeline.export import export_all
from pipeline.layout import EVALUATE_METRICS as METRICS, REPORT
from pipeline.distill_runs import distill
from pipeline.runs import train_student, train_teacher
from pipeline.store import read_split, split_path
from pipeline.teacher_cache import cache_teachers
from pipeline.topology_stage import compute_topology
from tests.conftest import tiny_params


def run_dag(workspace) -> dict:
    params = load_params()
    prepare(section(params, "data"), PREPARED)
    compute_topology(PREPARED, TOPOLOGY, section(params, "topology"))
    summaries = {f"teacher_{k}": train_teacher(k, params) for k in ("image", "topology")}
    summaries["scratch"] = train_student(params)
    summaries["teachers"] = cache_teachers(params)
    for method in params.distill.methods:
        summaries[method] = distill(method, params)
    export_all(params)
    evaluate_all(params)
    return summaries


@pytest.mark.slow
def test_dag_end_to_end(workspace):
    summaries = run_dag(workspace)

    x, attrs = read_split(split_path(PREPARED, "train"))
    assert x["x"].dtype == np.uint8 and x["x"].shape == (120, 32, 32, 1)
    pis, pattrs = read_split(split_path(TOPOLOGY, "train"))
    assert pis["pis"].dtype == np.float32 and pis["pis"].shape == (120, 2, 50, 50)
    np.testing.assert_array_equal(pis["y"], x["y"])
    assert np.isfinite(pis["pis"]).all() and pis["pis"].max() == pytest.approx(1.0)
    assert len(pattrs["mean"]) == 2 and all(s > 0 for s in pattrs["std"])

    metrics = json.loads(METRICS.read_text())
    for name in ("teacher_image", "teacher_topology", "scratch", "kd", "sp", "tgd", "tpkd"):
        assert 0.0 <= metrics[f"{name}_acc"] <= 100.0
        assert 0.0 <= metrics[f"{name}_ece"] <= 1.0
        assert f"{name}_acc" in summaries[name]
        live = json.loads(Path(f"data/live/{name}/metrics.json").read_text())
        assert live["step"] == 1 and f"{name}_acc" in live  # two epochs logged: steps 0 and 1
    assert "scratch_noise0.2_acc" in metrics and "teacher_topology_noise0.2_acc" not in metrics
    assert metrics["kd_params"] == metrics["scratch_params"] == metrics["tgd_params"]
    table = (REPORT / "report.md").read_text()
    assert "| tgd" in table and "teacher_topology" in table
    assert Path("data/plots/evaluate/confusion.png").stat().st_size > 1000

    # Annealing: the distilled students start from the scratch student's weights.
    assert read_checkpoint("data/models/tgd/last.pt")["meta"]["init"] == "scratch"
    # Teachers are never updated by distillation.
    before = read_checkpoint("data/models/teacher_image/last.pt")["state_dict"]
    teacher, _ = load_model("data/models/teacher_image/last.pt")
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, before[key])


@pytest.mark.slow
def test_checkpoint_of_another_architecture_fails_by_name(workspace):
    params = load_params()
    prepare(section(params, "data"), PREPARED)
    train_student(params)
    with pytest.raises(CheckpointError, match=r"scratch/last.pt.*arch='wrn10_1'.*'wrn16_1'"):
        load_model("data/models/scratch/last.pt", expect={"arch": "wrn16_1"})
    Path("data/models/scratch/broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="broken.pt"):
        load_model("data/models/scratch/broken.pt")


@pytest.mark.slow
def test_sensor_dag_end_to_end(workspace):
    """`data.name: basicmotions` alone switches the modality: windows in, 1-D students and signal
    teacher, one 64x64 PI per channel for the 2-D topology teacher, tpkd among the methods."""
    pytest.importorskip("aeon")
    raw = tiny_params(**{"data.name": "basicmotions", "data.limit_train": None, "data.limit_test": None,
                         "distill.methods": ["kd", "tpkd"], "train.epochs": 1, "train.batch_size": 8})
    (workspace / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    summaries = run_dag(workspace)

    x, attrs = read_split(split_path(PREPARED, "train"))
    assert x["x"].dtype == np.float32 and x["x"].shape == (40, 100, 6) and attrs["modality"] == "signal"
    pis, _ = read_split(split_path(TOPOLOGY, "test"))
    assert pis["pis"].dtype == np.float32 and pis["pis"].shape == (40, 6, 64, 64)
    dims = {name: read_checkpoint(f"data/models/{name}/last.pt")["meta"]["dims"]
            for name in ("teacher_image", "teacher_topology", "scratch", "tpkd")}
    assert dims == {"teacher_image": 1, "teacher_topology": 2, "scratch": 1, "tpkd": 1}
    metrics = json.loads(METRICS.read_text())
    assert {"tpkd_acc", "kd_acc", "scratch_acc", "teacher_topology_acc"} <= set(metrics)
    assert "tgd_acc" not in metrics and "tpkd_acc" in summaries["tpkd"]
