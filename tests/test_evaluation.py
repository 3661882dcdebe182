"""The evaluate stage's pieces: metrics of one model, the two metrics files, the warnings in plain
words, the tables and the figures. Expected values are worked out by hand here."""
import csv
import json

import numpy as np
import pytest
import torch
from torch import nn

from conftest import TINY_PARAMS, tiny_params
from pipeline import evaluation as E
from pipeline import figures, layout
from pipeline.errors import CheckpointError
from pipeline.params import EvaluateParams, validate
from tests.test_metrics import MeanIntensity, _mean_data

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_prediction_metrics_json_and_consistent():
    x, y = _mean_data(100)
    cfg = EvaluateParams(**{**TINY_PARAMS["evaluate"], "batch_size": 32, "noise_std": [0.0, 0.3], "ece_bins": 15})
    res = E.prediction_metrics(MeanIntensity(threshold=0.0), x, y, 2, lambda t: t - 0.5, cfg, noise=True)
    json.dumps(res)
    assert res["acc"] == 100.0 and "top5" not in res  # top-5 only beyond 10 classes
    assert list(res["noise_acc"]) == ["0.3"]  # σ 0 is `acc` itself: not a second metric
    assert res["noise_acc"]["0.3"] < 100.0
    assert res["confusion"] == [[50, 0], [0, 50]] and res["per_class_acc"] == [100.0, 100.0]
    assert 0.0 <= res["ece"] <= 1.0 and sum(res["calibration"]["count"]) == 100
    quiet = E.prediction_metrics(MeanIntensity(threshold=0.0), x, y, 2, lambda t: t - 0.5, cfg, noise=False)
    assert quiet["noise_acc"] == {}
    with pytest.raises(ValueError, match="3 classes"):
        E.prediction_metrics(MeanIntensity(threshold=0.0), x, y, 3, None, cfg, noise=False)


def test_prediction_metrics_top5_for_many_classes():
    torch.manual_seed(0)
    n, c = 64, 12
    model = nn.Sequential(nn.Linear(5, c))  # bare logits are accepted
    x, y = torch.rand(n, 5), torch.randint(0, c, (n,))
    res = E.prediction_metrics(model, x, y, c, None, EvaluateParams(**{**TINY_PARAMS["evaluate"], "batch_size": 16, "noise_std": [0.0]}), noise=False)
    with torch.no_grad():
        logits = model(x)
    top5 = 100.0 * (logits.topk(5, 1).indices == y[:, None]).any(1).float().mean().item()
    assert res["top5"] == pytest.approx(top5) and res["top5"] >= res["acc"]
    assert len(res["per_class_acc"]) == c


def _result(model, acc, **more):
    return {"model": model, "acc": acc, "best_acc": acc + 1.5, "best_epoch": 3, "ece": 0.1,
            "params": 77_562, "macs": 1_234_567, "noise_acc": {"0.1": acc - 10}, "torch_b1_ms": 0.6,
            **more}


RESULTS = [_result("teacher_image", 35.1), _result("teacher_topology", 26.9, noise_acc={}),
           _result("scratch", 40.7, onnx_b1_ms=0.3, onnx_b64_ms=4.0, onnx_bytes=316_000),
           _result("kd", 38.2, onnx_b1_ms=0.31), _result("tgd", 41.0, onnx_b1_ms=0.32)]


def test_one_definition_per_metric_and_timing_apart():
    quality = E.flat_metrics(RESULTS, E.QUALITY_KEYS, noise=True)
    timing = E.flat_metrics(RESULTS, E.TIMING_KEYS, noise=False)
    assert quality["scratch_acc"] == 40.7 and quality["kd_noise0.1_acc"] == pytest.approx(28.2)
    assert quality["scratch_best_acc"] == pytest.approx(42.2) and quality["teacher_topology_best_epoch"] == 3
    assert {k for k in quality if "best" in k} == {f"{r['model']}_best_{w}" for r in RESULTS
                                                   for w in ("acc", "epoch")}
    assert quality["scratch_onnx_bytes"] == 316_000 and "kd_onnx_bytes" not in quality  # absent: left out
    assert "teacher_topology_noise0.1_acc" not in quality
    assert not [k for k in quality if k.endswith("_ms")] and not set(quality) & set(timing)
    assert timing == {"teacher_image_torch_b1_ms": 0.6, "teacher_topology_torch_b1_ms": 0.6,
                      "scratch_torch_b1_ms": 0.6, "scratch_onnx_b1_ms": 0.3, "scratch_onnx_b64_ms": 4.0,
                      "kd_torch_b1_ms": 0.6, "kd_onnx_b1_ms": 0.31, "tgd_torch_b1_ms": 0.6,
                      "tgd_onnx_b1_ms": 0.32}


def test_warnings_name_weak_teachers_and_students_below_scratch():
    lines = E.warnings_in_words(RESULTS, ["kd", "tgd"])
    assert len(lines) == 3  # both teachers below scratch (40.70 %), kd below it; tgd above
    assert lines[0].startswith("The teacher_image (35.10 %) is less accurate than the scratch student (40.70 %)")
    assert "teacher_topology (26.90 %)" in lines[1]
    assert lines[2].startswith("The kd student (38.20 %) is below the scratch student (40.70 %)")
    strong = [_result("teacher_image", 99.0), _result("teacher_topology", 98.0), *RESULTS[2:]]
    assert E.warnings_in_words(strong, ["tgd"]) == []


def test_comparison_table_aligned_with_dashes_for_missing():
    table = E.comparison_table(RESULTS, classes=10)
    lines = table.split("\n")
    assert len(lines) == 2 + len(RESULTS) and len({len(line) for line in lines}) == 1  # aligned
    assert "top-5" not in lines[0] and "ONNX ms (b1)" in lines[0]
    assert set(lines[1]) <= set("|-: ")
    scratch, teacher = lines[2 + 2], lines[2]
    assert "40.70" in scratch and "77,562" in scratch and "1,234,567" in scratch and "0.30" in scratch
    assert teacher.rstrip(" |").endswith("–")  # the teacher was not exported
    assert "top-5 %" in E.comparison_table([_result("kd", 50.0, top5=80.0)], classes=12)


def test_comparison_table_shows_the_best_epoch_beside_the_last_as_optimistic():
    lines = E.comparison_table(RESULTS, classes=10).split("\n")
    headers = [h.strip() for h in lines[0].strip("|").split("|")]
    assert headers[2:5] == ["acc %", "best acc % (optimistic)", "best epoch"]
    scratch = [c.strip() for c in lines[4].strip("|").split("|")]
    assert scratch[2:5] == ["40.70", "42.20", "3"]
    assert "epoch chosen on the test set" in E.best_note("last")
    assert "`last` checkpoint's" in E.best_note("last") and "just as optimistic" in E.best_note("best")


def test_report_captions_the_best_epoch_column():
    params = validate(tiny_params(**{"distill.methods": ["kd", "tgd"], "evaluate.checkpoint": "best"}))
    results = [{**r, "n": 100} for r in RESULTS]
    report = E.markdown_report(results, params, 10, [])
    table = report.split(E.comparison_table(results, 10), 1)
    assert len(table) == 2 and table[1].startswith("\n\n" + E.best_note("best") + "\n")
    assert "`best` checkpoint's (evaluate.checkpoint): the best epoch's too" in report


def _summary(tmp_path, model, payload):
    folder = tmp_path / layout.model_dir(model)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(payload if isinstance(payload, str) else json.dumps(payload))


def test_best_epoch_comes_from_the_training_summary(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _summary(tmp_path, "kd", {"kd_acc": 70.25, "kd_best_acc": 72.5, "kd_best_epoch": 4, "epochs": 5})
    assert E.best_epoch_record("kd") == {"best_acc": 72.5, "best_epoch": 4}


def test_a_summary_without_the_best_epoch_is_refused_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match=r"data/models/kd/summary.json: no such file"):
        E.best_epoch_record("kd")
    _summary(tmp_path, "kd", {"kd_acc": 70.25, "epochs": 5})
    with pytest.raises(CheckpointError, match=r"data/models/kd/summary.json has no kd_best_acc or "
                                              r"kd_best_epoch: .*re-run the stage that trains kd"):
        E.best_epoch_record("kd")
    _summary(tmp_path, "kd", "{not json")
    with pytest.raises(CheckpointError, match=r"data/models/kd/summary.json: cannot read it as JSON"):
        E.best_epoch_record("kd")


def test_summary_says_where_figures_and_onnx_files_are():
    params = validate(tiny_params(**{"distill.methods": ["kd", "tgd"]}))
    summary = E.closing_summary(RESULTS, params, 10, E.warnings_in_words(RESULTS, ["kd", "tgd"]))
    assert "Best student: tgd at 41.00 % (scratch 40.70 %)." in summary
    assert summary.splitlines()[len(RESULTS) + 2] == E.best_note("last")   # right under the table
    assert summary.splitlines()[-1] == E.WHERE and "data/export/<model>/model.onnx" in E.WHERE
    assert "The kd student (38.20 %) is below" in summary


def _live(tmp_path, model, metric, values):
    folder = tmp_path / layout.live_dir(model) / "plots" / "metrics"
    folder.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{1000 + i}\t{i}\t{v}\n" for i, v in enumerate(values))
    (folder / f"{metric}.tsv").write_text(f"timestamp\tstep\t{metric}\n{rows}")


def _read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def test_plot_tables_from_dvclive_logs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _live(tmp_path, "scratch", "scratch_acc", [50.0, 75.5])
    _live(tmp_path, "tgd", "tgd_acc", [60.0])
    params = validate(tiny_params(**{"distill.methods": ["tgd"]}))
    E.write_plot_tables(params)  # teachers without logs are left out; no tgd shares yet
    assert _read_csv(layout.EVALUATE_PLOTS / "test_accuracy.csv") == [
        ["epoch", "series", "test_accuracy"], ["1", "scratch", "50"], ["2", "scratch", "75.5"], ["1", "tgd", "60"]]
    assert _read_csv(layout.EVALUATE_PLOTS / "tgd_teacher2_share.csv") == [["epoch", "series", "teacher2_share"]]
    _live(tmp_path, "tgd", "tgd_share_g1", [0.25, 0.5])
    _live(tmp_path, "tgd", "tgd_share_g3", [0.125])
    E.write_plot_tables(params)
    assert _read_csv(layout.EVALUATE_PLOTS / "tgd_teacher2_share.csv")[1:] == [
        ["1", "group 1", "0.25"], ["2", "group 1", "0.5"], ["1", "group 3", "0.125"]]


@pytest.mark.parametrize("classes", [10, 200])
def test_figures_are_pngs(tmp_path, classes):
    rng = np.random.default_rng(0)
    confusions = {m: rng.integers(0, 50, size=(classes, classes)) for m in ("scratch", "kd", "tgd")}
    path = figures.plot_confusions(confusions, [f"c{i}" for i in range(classes)], tmp_path / "a" / "cm.png", "t")
    assert path.read_bytes()[:8] == PNG_MAGIC
    bins = {"edges": [0.0, 0.5, 1.0], "count": [2, 0], "confidence": [0.4, None], "accuracy": [0.5, None]}
    rel = figures.plot_reliability({"kd": bins, "tgd": bins}, {"kd": 0.1, "tgd": 0.1}, tmp_path / "rel.png", "t")
    assert rel.read_bytes()[:8] == PNG_MAGIC
    bars = figures.plot_students(RESULTS[2:], tmp_path / "students.png", "t")
    assert bars.read_bytes()[:8] == PNG_MAGIC and bars.stat().st_size > 5000
