"""pipeline.experiments: seed tables and paired differences from `dvc exp show --json`."""
import json
import math
import subprocess
import sys

import pytest
from scipy import stats

from conftest import REPO
from pipeline import experiments
from pipeline.errors import PipelineError
from pipeline.experiments import (collect_runs, experiment_metrics, main, paired_differences,
                                  paired_table, select, summary_table, t_interval)

# Student t quantiles t(0.975, df), from tables: the test's hand computations use these.
T975 = {1: 12.706205, 2: 4.302653}


def _rev(name: str, seed: int, metrics: dict | None, timestamp: str = "2024-01-01T00:00:00") -> dict:
    entry = {"data": metrics} if metrics is not None else {
        "error": {"type": "FileNotFoundError", "msg": "No such file"}}
    return {"rev": f"{abs(hash(name)):040x}"[:40], "name": name, "error": None, "experiments": None,
            "data": {"rev": "x", "timestamp": timestamp,
                     "params": {"params.yaml": {"data": {"train": {"seed": seed}, "distill": {}}}},
                     "metrics": {"data/metrics/evaluate.json": entry}}}


def _experiment(name: str, seed: int, metrics: dict | None, state: str | None = None,
                timestamp: str = "2024-01-01T00:00:00") -> dict:
    """One entry of a baseline's `experiments`, as DVC 3.67 writes it: queued or failed runs carry
    an executor state (and a queued one has no metrics), finished ones executor None."""
    return {"revs": [_rev(name, seed, metrics, timestamp)], "name": name,
            "executor": None if state is None else {"state": state, "name": "dvc-task", "local": {}}}


def _exp_show(*baselines: list[dict]) -> list[dict]:
    """`dvc exp show --json -A`: the workspace row, then one row per commit, newest first."""
    rows = [{"rev": "workspace", "name": None, "data": {}, "error": None, "experiments": None}]
    for i, experiments_of_commit in enumerate(baselines):
        rows.append({"rev": f"{i:07d}" + "c" * 33, "name": "main" if i == 0 else None, "data": {},
                     "error": None, "experiments": experiments_of_commit or None})
    return rows


RUNS = {
    "s0": {"tgd_acc": 80.0, "tgd_ece": 0.1, "tgd_noise0.0_acc": 80.0, "tgd_noise0.1_acc": 60.0,
           "tgd_params": 1000, "teacher_image_acc": 90.0, "tgd_latency_ms": 0.3},
    "s1": {"tgd_acc": 84.0, "tgd_ece": 0.3, "tgd_noise0.0_acc": 84.0, "tgd_noise0.1_acc": 62.0,
           "tgd_params": 1000, "teacher_image_acc": 92.0, "tgd_latency_ms": 0.2},
}
SEED_STUDY = _exp_show([_experiment("s0", 0, RUNS["s0"]), _experiment("s1", 1, RUNS["s1"]),
                        _experiment("broken", 2, None)])


def test_metrics_of_finished_experiments_only():
    runs = experiment_metrics(SEED_STUDY)
    assert set(runs) == {"s0", "s1"}
    assert runs["s1"]["tgd_acc"] == 84.0


def test_table_gives_mean_and_sample_std_per_model_in_model_order():
    table = summary_table(select(collect_runs(SEED_STUDY), [], "s*"))
    rows = [line for line in table.splitlines() if line.startswith("| ") and "model" not in line]
    assert [r.split("|")[1].strip() for r in rows] == ["teacher_image", "tgd"]
    tgd = [c.strip() for c in rows[1].split("|")[1:-1]]
    # acc: mean 82, sample std 2.83; ECE 0.2 ± 0.1414; noise 0.1: 61 ± 1.41; noise 0.0 (= acc) omitted
    assert tgd == ["tgd", "82.00 ± 2.83", "0.2000 ± 0.1414", "61.00 ± 1.41", "1,000"]
    assert "noise 0.0" not in table


def test_named_run_and_saved_json(tmp_path, capsys):
    saved = tmp_path / "exp.json"
    saved.write_text(json.dumps(SEED_STUDY))
    main(["--json", str(saved), "s0"])
    assert "| tgd | 80.00 |" in capsys.readouterr().out


# --- why nothing was found ------------------------------------------------------------------


def test_no_names_and_no_pattern_asks_for_one():
    with pytest.raises(PipelineError, match="--match"):
        select(collect_runs(SEED_STUDY), [], None)


def test_no_experiments_at_all_says_so():
    with pytest.raises(PipelineError, match="no DVC experiments in this repository"):
        select(collect_runs(_exp_show([], [])), [], "seed*")


def test_no_match_lists_the_names_seen():
    with pytest.raises(PipelineError, match=r"no experiment matches 'seed\*' \(experiments seen: broken, s0, s1\)"):
        select(collect_runs(SEED_STUDY), [], "seed*")
    with pytest.raises(PipelineError, match="no experiment named nope"):
        select(collect_runs(SEED_STUDY), ["nope"], None)


def test_matching_runs_without_metrics_name_their_state():
    queued_and_failed = _exp_show([_experiment("seed0", 0, None, state="queued"),
                                   _experiment("seed1", 1, RUNS["s1"], state="failed"),
                                   _experiment("seed2", 2, None),
                                   _experiment("other", 0, RUNS["s0"])])
    runs = collect_runs(queued_and_failed)
    with pytest.raises(PipelineError, match=r"matching 'seed\*' have no metrics yet.*"
                       r"seed0 \(queued\), seed1 \(failed\), seed2 \(no data/metrics/evaluate.json\)"):
        select(runs, [], "seed*")
    with pytest.raises(PipelineError, match=r"named have no metrics yet.*seed1 \(failed\)"):
        select(runs, ["seed1"], None)


def test_some_runs_unfinished_are_left_out_with_a_note(capsys):
    runs = collect_runs(_exp_show([_experiment("seed0", 0, RUNS["s0"]),
                                   _experiment("seed1", 1, None, state="queued")]))
    assert list(select(runs, [], "seed*")) == ["seed0"]
    assert "left out, no metrics yet: seed1 (queued)" in capsys.readouterr().err


def test_runs_on_earlier_commits_are_found_and_the_newest_of_a_name_wins(capsys):
    # HEAD has one rerun of seed1; seed0 and the first seed1 hang off the previous commit.
    exp_show = _exp_show([_experiment("seed1", 1, {"tgd_acc": 70.0}, timestamp="2024-02-01T00:00:00")],
                         [_experiment("seed0", 0, {"tgd_acc": 50.0}),
                          _experiment("seed1", 1, {"tgd_acc": 60.0})])
    runs = select(collect_runs(exp_show), [], "seed*")
    assert {name: run.metrics["tgd_acc"] for name, run in runs.items()} == {"seed1": 70.0, "seed0": 50.0}
    assert runs["seed0"].commit == "0000001"
    assert "seed1 exists on commits 0000000, 0000001; using the one on 0000000" in capsys.readouterr().err


def test_dvc_is_asked_for_every_commit(monkeypatch, capsys):
    calls = []

    def fake_run(args, **kwargs):
        calls.append(args)
        return subprocess.CompletedProcess(args, 0, stdout=json.dumps(SEED_STUDY), stderr="")

    monkeypatch.setattr(experiments.subprocess, "run", fake_run)
    main(["--match", "s*"])
    assert calls == [["dvc", "exp", "show", "--json", "-A"]]
    assert "| tgd | 82.00 ± 2.83 |" in capsys.readouterr().out


# --- paired differences ---------------------------------------------------------------------

# One experiment per seed; the students of one experiment share teachers and seed.
WITHIN = _exp_show([
    _experiment("seed0", 0, {"teacher_image_acc": 90.0, "scratch_acc": 68.0, "kd_acc": 70.0,
                             "sp_acc": 70.5, "tgd_acc": 71.0, "kd_ece": 0.05, "tgd_ece": 0.03}),
    _experiment("seed1", 1, {"teacher_image_acc": 91.0, "scratch_acc": 69.0, "kd_acc": 72.0,
                             "sp_acc": 73.5, "tgd_acc": 75.0, "kd_ece": 0.04, "tgd_ece": 0.05}),
    _experiment("seed2", 2, {"teacher_image_acc": 92.0, "scratch_acc": 70.0, "kd_acc": 71.0,
                             "tgd_acc": 73.0, "kd_ece": 0.06, "tgd_ece": 0.04}),
])


def _rows(table: str) -> dict[str, list[str]]:
    rows = [line.split("|")[1:-1] for line in table.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows[1:]}


def test_t_interval_by_hand():
    # differences 1, 3, 2: mean 2, sample std 1, half width t(0.975, 2) / sqrt(3)
    mean, low, high = t_interval([1.0, 3.0, 2.0])
    assert stats.t.ppf(0.975, 2) == pytest.approx(T975[2], abs=1e-6)
    assert (mean, low, high) == pytest.approx((2.0, 2 - T975[2] / math.sqrt(3), 2 + T975[2] / math.sqrt(3)), abs=1e-6)
    assert t_interval([1.0]) is None


def test_paired_within_each_experiment_against_kd():
    paired = paired_differences(select(collect_runs(WITHIN), [], "seed*"), None, "kd")
    assert paired.differences == {"scratch": {0: -2.0, 1: -3.0, 2: -1.0}, "sp": {0: 0.5, 1: 1.5},
                                  "tgd": {0: 1.0, 1: 3.0, 2: 2.0}}
    table = paired_table(paired, same_run=True)
    rows = _rows(table)
    half3 = T975[2] / math.sqrt(3)          # three seeds, sample std 1: 2.484
    half2 = T975[1] * math.sqrt(0.5) / math.sqrt(2)   # sp: 0.5, 1.5: std sqrt(0.5), two seeds: 6.353
    assert rows["tgd"] == ["3", "+2.00", f"[{2 - half3:+.2f}, {2 + half3:+.2f}]", "+1.00", "+3.00", "+2.00"]
    assert rows["tgd"][2] == "[-0.48, +4.48]"
    assert rows["scratch"][:3] == ["3", "-2.00", "[-4.48, +0.48]"]
    assert rows["sp"] == ["2", "+1.00", f"[{1 - half2:+.2f}, {1 + half2:+.2f}]", "+0.50", "+1.50", "—"]
    assert rows["sp"][2] == "[-5.35, +7.35]"
    assert "kd" not in rows and "teacher_image" not in rows
    assert "95 % Student t interval" in table and "t(0.975, 2) = 4.3027" in table
    assert "seed 0: seed0, seed 1: seed1, seed 2: seed2" in table


def test_paired_command_against_scratch_and_on_ece(tmp_path, capsys):
    saved = tmp_path / "exp.json"
    saved.write_text(json.dumps(WITHIN))
    main(["--json", str(saved), "--match", "seed*", "--baseline", "scratch"])
    rows = _rows(capsys.readouterr().out)
    assert rows["kd"][:2] == ["3", "+2.00"] and rows["tgd"][:2] == ["3", "+4.00"]  # 3,6,3 and 2,3,1
    main(["--json", str(saved), "--match", "seed*", "--baseline", "kd", "--metric", "ece"])
    rows = _rows(capsys.readouterr().out)
    assert rows == {"tgd": ["3", "-0.0100", rows["tgd"][2], "-0.0200", "+0.0100", "-0.0200"]}


# Across experiments: tgd at another alpha in `a07-seed*` against the default runs `base-seed*`.
ACROSS = _exp_show([
    _experiment("base-seed0", 0, {"kd_acc": 70.0, "tgd_acc": 69.0}),
    _experiment("base-seed1", 1, {"kd_acc": 72.0, "tgd_acc": 70.0}),
    _experiment("base-seed2", 2, {"kd_acc": 71.0, "tgd_acc": 72.0}),
    _experiment("base-seed3", 3, {"kd_acc": 75.0, "tgd_acc": 75.0}),
    _experiment("a07-seed2", 2, {"kd_acc": 71.0, "tgd_acc": 74.0}),
    _experiment("a07-seed0", 0, {"kd_acc": 70.0, "tgd_acc": 74.0}),
    _experiment("a07-seed1", 1, {"kd_acc": 72.0, "tgd_acc": 74.0}),
])


def test_paired_across_experiments_by_seed(tmp_path, capsys):
    saved = tmp_path / "exp.json"
    saved.write_text(json.dumps(ACROSS))
    main(["--json", str(saved), "--match", "a07-*", "--baseline-match", "base-*", "--baseline", "kd"])
    out = capsys.readouterr().out
    rows = _rows(out)
    # tgd(a07) - kd(base): 4, 2, 3 -> mean 3, sample std 1; kd(a07) - kd(base): 0, 0, 0
    assert rows["tgd"] == ["3", "+3.00", "[+0.52, +5.48]", "+4.00", "+2.00", "+3.00"]
    assert rows["kd"] == ["3", "+0.00", "[+0.00, +0.00]", "+0.00", "+0.00", "+0.00"]
    assert "seed 0: a07-seed0 − base-seed0" in out and "seed 2: a07-seed2 − base-seed2" in out
    assert "Left out (no run with the same train.seed on the other side): base-seed3" in out
    main(["--json", str(saved), "--match", "a07-*", "--baseline-match", "base-*", "--baseline", "tgd"])
    assert _rows(capsys.readouterr().out)["tgd"][:2] == ["3", "+3.67"]  # 5, 4, 2


def test_paired_errors_name_the_culprit(tmp_path):
    runs = collect_runs(ACROSS)
    with pytest.raises(PipelineError, match="base-seed0 and a07-seed0 both have train.seed=0"):
        paired_differences(select(runs, [], "*seed0"), None, "kd")
    with pytest.raises(PipelineError, match="no nope_acc in a07-seed0"):
        paired_differences(select(runs, [], "a07-*"), None, "nope")
    with pytest.raises(PipelineError, match="no seed in common"):
        paired_differences(select(runs, ["a07-seed0"], None), select(runs, ["base-seed3"], None), "kd")
    saved = tmp_path / "exp.json"
    saved.write_text(json.dumps(ACROSS))
    with pytest.raises(SystemExit, match="--baseline-match needs --baseline"):
        main(["--json", str(saved), "--match", "a07-*", "--baseline-match", "base-*"])


# --- what runs are: repeats of one setting, or refused ----------------------------------------

def _run_with(name: str, params: dict, metrics: dict | None = None) -> dict:
    """An experiment whose params.yaml is `params` (the seed among them)."""
    entry = _experiment(name, params["train"]["seed"], metrics or {"kd_acc": 70.0, "tgd_acc": 71.0})
    entry["revs"][0]["data"]["params"]["params.yaml"]["data"] = params
    return entry


def _params(seed: int = 0, name: str = "digits", teacher: str = "wrn16_1", alpha: float = 0.99,
            root=None, device: str = "auto") -> dict:
    return {"data": {"name": name, "root": root}, "train": {"seed": seed, "epochs": 1, "device": device},
            "models": {"teacher_image": teacher, "teacher_topology": "wrn16_1", "student": "wrn10_1"},
            "distill": {"tgd": {"alpha": alpha}}}


MIXED = _exp_show([
    _run_with("seed0", _params(0)), _run_with("seed1", _params(1, device="cpu")),
    _run_with("cifar-seed0", _params(0, "imagefolder", "wrn16_3", root="/data/raw/cifar10-jpeg")),
    _run_with("cifar-seed1", _params(1, "imagefolder", "wrn16_3", root="/elsewhere/cifar10-jpeg")),
    _run_with("a05-seed0", _params(0, alpha=0.5)), _run_with("a05-seed1", _params(1, alpha=0.5)),
    _run_with("cifar-a05-seed0", _params(0, "imagefolder", "wrn16_3", 0.5, root="/data/raw/cifar10-jpeg")),
])


def _error(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(list(argv))
    message = str(exit_.value.code) if exit_.value.code not in (None, 2) else capsys.readouterr().err
    assert message.count("\n") <= 1 and "Traceback" not in message, message
    return message.strip()


def test_runs_of_different_data_sets_and_models_are_not_averaged(tmp_path, capsys):
    saved = tmp_path / "exp.json"
    saved.write_text(json.dumps(MIXED))
    assert _error(capsys, "--json", str(saved), "seed0", "cifar-seed0") == (
        "error: runs seed0 vs cifar-seed0 differ in data.name (digits vs imagefolder), data.root "
        "(null vs /data/raw/cifar10-jpeg), models.teacher_image (wrn16_1 vs wrn16_3); compare "
        "repeats of one setting, or pass --match to pick them")
    # three settings: each named, and every param in which one differs from the first
    message = _error(capsys, "--json", str(saved), "--match", "*seed0")
    assert message.startswith("error: runs seed0 vs cifar-seed0 vs a05-seed0 vs cifar-a05-seed0 differ "
                              "in data.name (digits vs imagefolder vs digits vs imagefolder), ")
    assert message.endswith(", distill.tgd.alpha (0.99 vs 0.99 vs 0.5 vs 0.5); compare repeats of one "
                            "setting, or pass --match to pick them")


def test_repeats_of_one_setting_are_averaged_whatever_ran_them(tmp_path, capsys):
    saved = tmp_path / "exp.json"
    saved.write_text(json.dumps(MIXED))
    main(["--json", str(saved), "seed0", "seed1"])   # train.device differs: how, not what
    out = capsys.readouterr().out
    assert out.startswith("2 runs: seed0, seed1 (mean ± sample std); digits, teachers wrn16_1 + "
                          "wrn16_1, student wrn10_1, 1 epoch, 2 seeds")
    assert "data.root" in _error(capsys, "--json", str(saved), "--match", "cifar-seed*")
    main(["--json", str(saved), "--match", "cifar-seed*", "--ignore", "data.root"])
    assert capsys.readouterr().out.startswith("2 runs: cifar-seed0, cifar-seed1")
    main(["--json", str(saved), "seed0"])
    assert capsys.readouterr().out.startswith("1 run: seed0 (mean ± sample std); digits, teachers "
                                              "wrn16_1 + wrn16_1, student wrn10_1, 1 epoch, 1 seed")


def test_paired_sides_may_differ_in_the_variant_but_not_in_data_or_models(tmp_path, capsys):
    saved = tmp_path / "exp.json"
    saved.write_text(json.dumps(MIXED))
    main(["--json", str(saved), "--match", "a05-*", "--baseline-match", "seed*", "--baseline", "kd"])
    out = capsys.readouterr().out
    assert "(2 seeds)" in out and "seed 0: a05-seed0 − seed0" in out
    main(["--json", str(saved), "a05-seed0", "--baseline-match", "seed0", "--baseline", "kd"])
    assert "(1 seed)" in capsys.readouterr().out
    assert _error(capsys, "--json", str(saved), "--match", "cifar-a05-*", "--baseline-match", "a05-*",
                  "--baseline", "kd") == (
        "error: --match runs cifar-a05-seed0 and --baseline-match runs a05-seed0, a05-seed1 differ in "
        "data.name (imagefolder vs digits), data.root (/data/raw/cifar10-jpeg vs null), models.teacher_image "
        "(wrn16_3 vs wrn16_1); a paired comparison needs one data set and the same models on both sides")
    assert _error(capsys, "--json", str(saved), "--match", "a05-*", "--baseline-match", "*seed0",
                  "--baseline", "kd").startswith("error: --baseline-match runs seed0 vs cifar-seed0")
    assert _error(capsys, "--json", str(saved), "--match", "*seed1", "--baseline", "kd").startswith(
        "error: runs seed1 vs cifar-seed1 vs a05-seed1 differ in")


# --- every error is one line ------------------------------------------------------------------

def test_bad_saved_json_is_one_line(tmp_path, capsys):
    missing = tmp_path / "nope.json"
    assert _error(capsys, "--json", str(missing)) == f"error: --json {missing}: no such file"
    bad = tmp_path / "bad.json"
    bad.write_text("Running experiments...\n")
    assert _error(capsys, "--json", str(bad)).startswith(f"error: --json {bad}: not JSON (Expecting value")
    shapes = {"dict": {"workspace": {}}, "number": 3, "row": [{"name": "main"}],
              "experiments": [{"rev": "abc", "experiments": {"a": 1}}],
              "revs": [{"rev": "abc", "experiments": [{"name": "a", "revs": ["not a rev"]}]}],
              "params": [{"rev": "abc", "data": {"params": {"params.yaml": {"data": [1, 2]}}}}]}
    for what, shape in shapes.items():
        bad.write_text(json.dumps(shape))
        message = _error(capsys, "--json", str(bad))
        assert message.startswith("error: not the output of `dvc exp show --json`: "), (what, message)
    assert _error(capsys, "--json", str(tmp_path)).startswith(f"error: --json {tmp_path}: cannot read it")


def _stand_in_dvc(tmp_path, monkeypatch, script: str) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "dvc").write_text("#!/bin/sh\n" + script)
    (folder / "dvc").chmod(0o755)
    monkeypatch.setenv("PATH", str(folder))


def test_dvc_missing_or_failing_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert _error(capsys).startswith("error: `dvc` is not on PATH: install it")
    _stand_in_dvc(tmp_path, monkeypatch, "echo 'ERROR: you are not inside of a DVC repository' >&2\n"
                                         "echo '(checked up to mount point /)' >&2\nexit 255\n")
    assert _error(capsys, "--match", "s*") == ("error: `dvc exp show --json -A` failed: ERROR: you are "
                                               "not inside of a DVC repository (checked up to mount point /)")
    (tmp_path / "bin" / "dvc").write_text("#!/bin/sh\necho 'no json here'\n")
    assert _error(capsys).startswith("error: `dvc exp show --json -A` printed no JSON")
    (tmp_path / "bin" / "dvc").write_text("#!/bin/sh\necho 'WARNING: x'\necho '" + json.dumps(SEED_STUDY) + "'\n")
    main(["--match", "s*"])
    assert "| tgd | 82.00 ± 2.83 |" in capsys.readouterr().out


def test_a_wrong_option_is_one_line(capsys):
    assert _error(capsys, "--nope").startswith("error: unrecognized arguments: --nope")
    assert _error(capsys, "--compare", "--baseline", "kd", "--json", "x").startswith("error: --compare")


def test_the_command_prints_one_line_and_no_traceback(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pipeline.experiments", "--json", str(tmp_path / "x.json")],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == f"error: --json {tmp_path / 'x.json'}: no such file\n"


# --- the best epoch's accuracy: optimistic, labelled so, and older runs named ------------------

OPTIMISTIC = "best-epoch test accuracy (optimistic: epoch chosen on the test set)"


def _with_best(metrics: dict, shift: float) -> dict:
    """`metrics` and, for each model's acc, a best-epoch accuracy `shift` points above it."""
    best = {k.replace("_acc", "_best_acc"): v + shift for k, v in metrics.items()
            if k.endswith("_acc") and "noise" not in k}
    return {**metrics, **best, **{k.replace("_best_acc", "_best_epoch"): 3 for k in best}}


BEST = _exp_show([
    _experiment("seed0", 0, _with_best({"scratch_acc": 68.0, "kd_acc": 70.0, "tgd_acc": 71.0}, 1.0)),
    _experiment("seed1", 1, {**_with_best({"scratch_acc": 69.0, "kd_acc": 72.0}, 0.5),
                             "tgd_acc": 75.0, "tgd_best_acc": 78.0}),
    _experiment("old-seed2", 2, {"scratch_acc": 70.0, "kd_acc": 71.0, "tgd_acc": 73.0}),
])


def test_best_acc_is_parsed_under_its_model_not_as_a_model_of_its_own():
    from pipeline.experiment_stats import by_model
    assert by_model({"kd_best_acc": 71.0, "tgd_t1_best_epoch": 4, "tgd_t1_acc": 70.0}) == {
        "kd": {"best_acc": 71.0}, "tgd_t1": {"best_epoch": 4.0, "acc": 70.0}}


def test_summary_shows_best_acc_beside_acc_labelled_optimistic(tmp_path, capsys):
    saved = tmp_path / "exp.json"
    saved.write_text(json.dumps(BEST))
    main(["--json", str(saved), "seed0", "seed1"])
    out = capsys.readouterr().out
    rows = _rows(out)
    assert out.splitlines()[2].startswith("| model | acc % | best acc % (optimistic) |")
    assert rows["tgd"][:2] == ["73.00 ± 2.83", "75.00 ± 4.24"]   # 71, 75 and 72, 78
    assert rows["scratch"][:2] == ["68.50 ± 0.71", "69.25 ± 0.35"]
    assert OPTIMISTIC in out
    # an older run without it: the column goes, and a note names the run
    main(["--json", str(saved), "--match", "*seed*"])
    out = capsys.readouterr().out
    assert "best acc % (optimistic) |" not in out and _rows(out)["tgd"][0] == "73.00 ± 2.00"
    assert "note: best acc % (optimistic) left out: no *_best_acc in the data/metrics/evaluate.json " \
           "of old-seed2: evaluated before evaluate.json recorded the best epoch" in out


def test_paired_differences_in_best_acc_are_labelled_optimistic(tmp_path, capsys):
    saved = tmp_path / "exp.json"
    saved.write_text(json.dumps(BEST))
    main(["--json", str(saved), "seed0", "seed1", "--baseline", "kd", "--metric", "best_acc"])
    out = capsys.readouterr().out
    # tgd: 72 - 71, 78 - 72.5; scratch: 69 - 71, 69.5 - 72.5
    assert _rows(out)["tgd"][:2] == ["2", "+3.25"] and _rows(out)["tgd"][3:] == ["+1.00", "+5.50"]
    assert _rows(out)["scratch"][3:] == ["-2.00", "-3.00"]
    assert out.startswith(f"Paired differences in `best_acc`, the {OPTIMISTIC}: model − kd of the same run")
    main(["--json", str(saved), "seed0", "seed1", "--baseline", "kd"])   # acc stays the default
    assert _rows(capsys.readouterr().out)["tgd"][3:] == ["+1.00", "+3.00"]


def test_older_experiments_without_best_acc_are_named(tmp_path, capsys):
    saved = tmp_path / "exp.json"
    saved.write_text(json.dumps(BEST))
    expected = ("error: --metric best_acc: no *_best_acc in the data/metrics/evaluate.json of old-seed2: "
                "evaluated before evaluate.json recorded the best epoch; re-run the experiment")
    assert _error(capsys, "--json", str(saved), "--match", "*seed*", "--baseline", "kd",
                  "--metric", "best_acc").startswith(expected)
    assert _error(capsys, "--json", str(saved), "seed0", "--baseline-match", "old-seed2",
                  "--baseline", "kd", "--metric", "best_acc").startswith(expected)
    assert _error(capsys, "--json", str(saved), "--match", "*seed*", "--metric", "best_acc").startswith(expected)
    with pytest.raises(PipelineError, match="of seed0, seed1, old-seed2$"):
        paired_differences(select(collect_runs(BEST), [], "*seed*"), None, "kd", "top5")
