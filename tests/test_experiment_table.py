"""`python -m pipeline.experiments` with no names: the baseline beside each experiment, in at most
120 columns, from a `dvc exp show --json -A` shaped as DVC 3.67 writes it (deps, outs and their
hashes included, which the table never shows)."""
import copy
import json

import pytest

from conftest import REPO, tiny_params
from pipeline.experiment_runs import Run
from pipeline.experiment_table import comparison
from pipeline.experiments import main

MODELS = ["teacher_image", "teacher_topology", "scratch", "kd", "sp", "tgd", "tpkd"]
HASH = "4e2b9370a1c2d3e4f5a6b7c8d9e0f1a2.dir"


def metrics(shift: float = 0.0, models=MODELS) -> dict:
    values = {}
    for i, model in enumerate(models):
        values |= {f"{model}_acc": 90.0 - 3 * i + shift, f"{model}_ece": 0.01 * (i + 1),
                   f"{model}_noise0.1_acc": 60.0 + i, f"{model}_params": 78042 + i,
                   f"{model}_macs": 1_000_000 + i, f"{model}_onnx_bytes": 320_000 + i}
    return values


def with_changes(params: dict, changes: dict) -> dict:
    params = copy.deepcopy(params)
    for key, value in changes.items():
        *path, last = key.split(".")
        node = params
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return params


def rev(rev_id: str, name, params: dict, values: dict | None, timestamp: str) -> dict:
    """One revision as `dvc exp show --json` writes it, dependency hashes and all."""
    return {"rev": rev_id, "name": name, "error": None, "experiments": None, "data": {
        "rev": rev_id, "timestamp": timestamp, "meta": {"has_checkpoints": False},
        "params": {"params.yaml": {"data": params}},
        "metrics": {"data/metrics/evaluate.json": {"data": values}} if values is not None else {},
        "deps": {"data/prepared": {"hash": HASH, "size": 123456, "nfiles": 4},
                 "pipeline/evaluation.py": {"hash": "9910c0b3ed3dfc176ce2c94c4f9d9112", "size": 5846,
                                            "nfiles": None}},
        "outs": {"data/models/tgd": {"hash": HASH, "size": 99, "nfiles": 2, "use_cache": True,
                                     "is_data_source": False}}}}


def exp_show(base_params: dict, experiments: list[tuple[str, dict, dict | None]],
             workspace: tuple[dict, dict] | None = None) -> list[dict]:
    """Workspace, the baseline commit `main` with `experiments` (name, changed params, metrics;
    newest first as DVC lists them), and an older commit."""
    ws_params, ws_metrics = workspace or (base_params, metrics())
    exps = [{"name": name, "executor": None,
             "revs": [rev(f"{i + 1:040x}", name, with_changes(base_params, changes), values,
                          f"2024-01-0{9 - i}T00:00:00")]}
            for i, (name, changes, values) in enumerate(experiments)]
    return [rev("workspace", None, ws_params, ws_metrics, "2024-01-10T00:00:00"),
            {**rev("35ca24779c3dbbeca32e40d8e323689dcbcedd81", "main", base_params, metrics(),
                   "2024-01-01T00:00:00"), "experiments": exps or None},
            rev("a0512bfb00bde25d3153e10f7b780a1d687cf67e", None, base_params, None, "2023-12-01T00:00:00")]


# The tests' own baseline params: fixed here, whatever the suite's tiny params become.
BASE = with_changes(tiny_params(), {"data.name": "digits", "data.root": None, "train.seed": 0,
                                    "train.epochs": 2, "models.teacher_image": "wrn10_1",
                                    "models.teacher_topology": "wrn10_1", "models.student": "wrn10_1"})
PAPER = {"data.name": "imagefolder", "data.root": "data/raw/cifar10-jpeg",
         "models.teacher_image": "wrn16_3", "models.teacher_topology": "wrn16_3",
         "models.student": "wrn16_1", "train.epochs": 20, "topology.image.resolution": 50,
         "evaluate.noise_std": [0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4]}
STUDY = [("paper-cifar10-seed0-with-a-long-name", PAPER, metrics(-20)),
         ("seed1", {"train.seed": 1}, metrics(1)),
         ("alpha05", {"distill.tgd.alpha": 0.5}, metrics(0.5))]


def _show(tmp_path, capsys, shown: list[dict], *args: str) -> str:
    saved = tmp_path / "exp.json"
    saved.write_text(json.dumps(shown))
    main(["--json", str(saved), *args])
    return capsys.readouterr().out


def _row(out: str, name: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(name + " "))


def test_baseline_and_experiments_fit_120_columns(tmp_path, capsys):
    out = _show(tmp_path, capsys, exp_show(BASE, STUDY))
    assert max(len(line) for line in out.splitlines()) <= 120, out
    assert HASH[:8] not in out and ".dir" not in out and "9910c0b3" not in out
    lines = out.splitlines()
    assert lines[0] == ("Baseline main (35ca247): digits, teachers wrn10_1 + wrn10_1, student wrn10_1, "
                        "2 epochs, seed 0; 3 experiments")
    assert _row(out, "alpha05").split() == ["alpha05", "tgd.alpha=0.5"]
    assert _row(out, "seed1").split() == ["seed1", "train.seed=1"]
    assert _row(out, "main").split()[1:] == ["(the", "baseline)"]
    paper = _row(out, "paper-cifar10-seed0-wit…")          # names cut at 24 characters
    assert "data.name=imagefolder" in paper and "data.root=data/raw/cifar10-jpeg" in paper
    assert "distill." not in out
    acc = lines.index(next(line for line in lines if line.startswith("acc %")))
    assert lines[acc].split() == ["acc", "%", *MODELS]
    # the workspace is the baseline's run again: not shown twice
    assert "workspace" not in out
    # experiments in the order they were made; the numbers under their models
    assert [line.split()[0] for line in lines[acc + 1:acc + 5]] == \
        ["main", "alpha05", "seed1", "paper-cifar10-seed0-wit…"]
    assert lines[acc + 2].split()[1:3] == ["90.50", "87.50"]
    ece = next(line for line in lines if line.startswith("ECE"))
    assert ece.split() == ["ECE", *MODELS] and "0.0700" in _row(out.split("ECE", 1)[1], "seed1")


def test_long_param_lists_are_cut_to_the_line(tmp_path, capsys):
    many = {f"distill.tgd.knob{i}": [j / 4 for j in range(9)] for i in range(12)}
    out = _show(tmp_path, capsys, exp_show(BASE, [("knobs", many, metrics())]))
    lines = out.splitlines()
    at = lines.index(_row(out, "knobs"))
    knobs = lines[at:at + 3]            # three lines at most, then `… +N more`
    assert all(len(line) <= 120 for line in knobs) and lines[at + 3].strip() == ""
    assert knobs[0].split()[1] == "tgd.knob0=[0.0,0.25,0.5,0.75,1.0,…" and knobs[1].startswith(" " * 10)
    assert knobs[2].endswith("tgd.knob7=[0.0,0.25,0.5,0.75,1.0,…  … +4 more")


def test_many_models_fold_into_blocks(tmp_path, capsys):
    models = [*MODELS, "kd_smooth", "tgd_cubical_stacked", "tpkd_balanced", "kd_batchmean", "sp_long"]
    shown = exp_show(BASE, [("a", {"train.seed": 1}, metrics(0, models))],
                     workspace=(BASE, metrics(0, models)))
    shown[1]["data"]["metrics"]["data/metrics/evaluate.json"]["data"] = metrics(0, models)
    out = _show(tmp_path, capsys, shown)
    assert max(len(line) for line in out.splitlines()) <= 120
    headers = [line for line in out.splitlines() if line.startswith("acc %")]
    assert len(headers) == 2 and sorted(m for h in headers for m in h.split()[2:]) == sorted(models)


def test_an_uncommitted_workspace_run_and_unfinished_runs_are_shown(tmp_path, capsys):
    shown = exp_show(BASE, [("alpha05", {"distill.tgd.alpha": 0.5}, metrics(0.5))],
                     workspace=(with_changes(BASE, {"train.epochs": 3}), metrics(2)))
    shown[1]["experiments"].append({"name": "queued1", "executor": {"state": "queued"}, "revs": [
        rev("f" * 40, "queued1", BASE, None, "2024-01-09T12:00:00")]})
    out = _show(tmp_path, capsys, shown)
    assert _row(out, "workspace").split() == ["workspace", "train.epochs=3"]
    assert "note: no metrics yet: queued1 (queued)" in out


def test_a_baseline_without_metrics_says_what_to_commit(tmp_path, capsys):
    shown = exp_show(BASE, [("alpha05", {"distill.tgd.alpha": 0.5}, metrics(0.5))])
    shown[1]["data"]["metrics"] = {}
    out = _show(tmp_path, capsys, shown)
    assert "note: the baseline main has no data/metrics/evaluate.json: commit dvc.lock" in out
    assert _row(out.split("acc %", 1)[1], "main").split()[1:] == ["—"] * len(MODELS)


def test_compare_with_a_pattern_and_with_no_experiments(tmp_path, capsys):
    out = _show(tmp_path, capsys, exp_show(BASE, STUDY), "--compare", "--match", "s*")
    assert [line.split()[0] for line in out.splitlines()[3:5]] == ["main", "seed1"]
    out = _show(tmp_path, capsys, exp_show(BASE, []))
    assert "0 experiments" in out.splitlines()[0] and "note: no experiments yet" in out


def test_one_run_reads_in_the_singular():
    run = Run("main", "35ca247", "done", with_changes(BASE, {"train.epochs": 1}), metrics(), "",
              kind="baseline")
    exp = Run("a", "35ca247", "done", BASE, metrics(), "")
    assert comparison([run, exp], run).splitlines()[0].endswith("1 epoch, seed 0; 1 experiment")


def _readme_text_after(marker: str) -> str:
    readme = (REPO / "README.md").read_text()
    assert marker in readme, f"README.md lost {marker!r}"
    return readme.split(marker, 1)[1].split("```text\n", 1)[1].split("```", 1)[0]


def test_readme_quotes_the_comparison_as_it_prints(tmp_path, capsys):
    """README.md's comparison after its flow (`dvc repro`, commit, `dvc exp run -n alpha05 -S
    distill.tgd.alpha=0.5`): the command's output for a baseline and that experiment, rebuilt
    here from the numbers quoted, line for line."""
    quoted = _readme_text_after("`python -m pipeline.experiments` prints")
    lines = quoted.splitlines()
    assert max(len(line) for line in lines) <= 120
    assert lines[6].startswith("acc %") and lines[10].startswith("ECE")
    models = lines[6].split()[2:]
    acc = {line.split()[0]: line.split()[1:] for line in lines[7:9]}
    ece = {line.split()[0]: line.split()[1:] for line in lines[11:13]}
    def values(name):
        return {**{f"{m}_acc": float(v) for m, v in zip(models, acc[name])},
                **{f"{m}_ece": float(v) for m, v in zip(models, ece[name])}}
    base = with_changes(BASE, {"models.teacher_image": "wrn16_1", "models.teacher_topology": "wrn16_1",
                               "train.epochs": 5})
    shown = exp_show(base, [("alpha05", {"distill.tgd.alpha": 0.5}, values("alpha05"))],
                     workspace=(with_changes(base, {"distill.tgd.alpha": 0.5}), values("alpha05")))
    shown[1]["rev"] = lines[0].split("(")[1].split(")")[0] + "0" * 33
    shown[1]["data"]["metrics"]["data/metrics/evaluate.json"]["data"] = values("main")
    assert _show(tmp_path, capsys, shown) == quoted


def test_readme_quotes_the_refusal_as_it_prints(tmp_path, capsys):
    quoted = _readme_text_after("naming what differs:").strip()
    seed0 = with_changes(BASE, {"models.teacher_image": "wrn16_1"})
    cifar = {"data.name": "imagefolder", "data.root": "data/raw/cifar10-jpeg",
             "models.teacher_image": "wrn16_3"}
    saved = tmp_path / "exp.json"
    saved.write_text(json.dumps(exp_show(seed0, [("seed0", {}, metrics()), ("cifar-seed0", cifar, metrics())])))
    with pytest.raises(SystemExit) as exit_:
        main(["--json", str(saved), "--match", "*"])
    assert str(exit_.value.code) == quoted


def with_best(values: dict, shift: float = 1.5) -> dict:
    """`values` and each model's best-epoch accuracy, `shift` points above its last epoch's."""
    return {**values, **{f"{m}_best_acc": values[f"{m}_acc"] + shift for m in MODELS if f"{m}_acc" in values},
            **{f"{m}_best_epoch": 2 for m in MODELS if f"{m}_acc" in values}}


def test_metric_best_acc_adds_its_block_labelled_optimistic_in_120_columns(tmp_path, capsys):
    study = [(name, changes, with_best(values)) for name, changes, values in STUDY]
    study.insert(0, ("old-before-best", {"train.seed": 2}, metrics(0.25)))
    shown = exp_show(BASE, study, workspace=(BASE, with_best(metrics())))
    shown[1]["data"]["metrics"]["data/metrics/evaluate.json"]["data"] = with_best(metrics())
    default = _show(tmp_path, capsys, shown)
    assert "best acc" not in default and "optimistic" not in default    # acc stays the default
    out = _show(tmp_path, capsys, shown, "--metric", "best_acc")
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 120, out
    at = lines.index("best_acc: best-epoch test accuracy (optimistic: epoch chosen on the test set)")
    assert lines[at + 1].split() == ["best", "acc", "%", "(optimistic)", *MODELS]
    assert lines[at - 1] == "" and lines[at - 3].startswith("paper-cifar10")   # after the acc block
    assert _row("\n".join(lines[at:]), "alpha05").split()[1:3] == ["92.00", "89.00"]
    assert _row("\n".join(lines[at:]), "old-before-best").split()[1:] == ["—"] * len(MODELS)
    notes = "\n".join(lines[lines.index(next(line for line in lines if line.startswith("note: "))):])
    assert notes.startswith("note: no *_best_acc in the data/metrics/evaluate.json of old-before-best: "
                            "evaluated before evaluate.json")
    assert "re-run the experiment with the current code" in " ".join(notes.split())
