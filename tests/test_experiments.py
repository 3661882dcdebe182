"""pipeline.experiments: a seed study's table from `dvc exp show --json`."""
import json

import pytest

from pipeline.errors import PipelineError
from pipeline.experiments import experiment_metrics, main, select, summary_table


def _exp_show(runs: dict[str, dict | None]) -> list[dict]:
    """The shape of `dvc exp show --json` (DVC 3): a workspace row, then baselines with their
    experiments; a run whose metrics file is missing carries an error instead of data."""
    revs = []
    for name, metrics in runs.items():
        entry = {"data": metrics} if metrics is not None else {"error": {"type": "FileNotFoundError"}}
        revs.append({"rev": name * 2, "name": name,
                     "data": {"params": {}, "metrics": {"data/metrics/evaluate.json": entry}}})
    return [{"rev": "workspace", "name": None, "data": {}, "experiments": None},
            {"rev": "abc", "name": "main", "data": {}, "experiments": [{"revs": [r]} for r in revs]}]


RUNS = {
    "s0": {"tgd_acc": 80.0, "tgd_ece": 0.1, "tgd_noise0.0_acc": 80.0, "tgd_noise0.1_acc": 60.0,
           "tgd_params": 1000, "teacher_image_acc": 90.0, "tgd_latency_ms": 0.3},
    "s1": {"tgd_acc": 84.0, "tgd_ece": 0.3, "tgd_noise0.0_acc": 84.0, "tgd_noise0.1_acc": 62.0,
           "tgd_params": 1000, "teacher_image_acc": 92.0, "tgd_latency_ms": 0.2},
    "broken": None,
}


def test_metrics_of_finished_experiments_only():
    runs = experiment_metrics(_exp_show(RUNS))
    assert set(runs) == {"s0", "s1"}
    assert runs["s1"]["tgd_acc"] == 84.0


def test_table_gives_mean_and_sample_std_per_model_in_model_order():
    table = summary_table(select(experiment_metrics(_exp_show(RUNS)), [], "s*"))
    rows = [line for line in table.splitlines() if line.startswith("| ") and "model" not in line]
    assert [r.split("|")[1].strip() for r in rows] == ["teacher_image", "tgd"]
    tgd = [c.strip() for c in rows[1].split("|")[1:-1]]
    # acc: mean 82, sample std 2.83; ECE 0.2 ± 0.1414; noise 0.1: 61 ± 1.41; noise 0.0 (= acc) omitted
    assert tgd == ["tgd", "82.00 ± 2.83", "0.2000 ± 0.1414", "61.00 ± 1.41", "1,000"]
    assert "noise 0.0" not in table


def test_unknown_or_no_names_fail_clearly(tmp_path, capsys):
    runs = experiment_metrics(_exp_show(RUNS))
    with pytest.raises(PipelineError, match="no finished experiment named broken"):
        select(runs, ["broken"], None)
    with pytest.raises(PipelineError, match="--match"):
        select(runs, [], None)
    saved = tmp_path / "exp.json"
    saved.write_text(json.dumps(_exp_show(RUNS)))
    main(["--json", str(saved), "s0"])
    assert "| tgd | 80.00 |" in capsys.readouterr().out
