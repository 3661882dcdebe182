"""params validation: every bad, missing or non-finite key fails early with one line naming it;
presets are overrides; the tests' own params never come from the working copy."""
import builtins
import math
import pathlib

import pytest
import yaml

from conftest import REPO, TINY_PARAMS, tiny_params
from pipeline.errors import ParamsError
from pipeline.params import load_params, schema, section, validate
from pipeline.presets import apply_overrides, flatten, main, preset_flags


def _set(raw: dict, path: tuple, value) -> dict:
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return raw


def _error(raw: dict) -> str:
    with pytest.raises(ParamsError) as error:
        validate(raw, "params.yaml")
    message = str(error.value)
    assert "\n" not in message
    return message


def test_tests_params_are_complete_and_valid():
    params = validate(tiny_params())
    assert params.data.name == "digits" and params.train.epochs == 2
    assert section(params, "distill")["tgd"]["lambda"] == 0.9  # params.yaml's own key name survives
    assert params.topology.image.resolution == 50 and params.topology.signal.resolution == 64


def test_tests_params_never_read_the_working_copy(monkeypatch):
    """tiny_params is built in the tests: reading any file while building it fails here, and the
    user's edits of params.yaml cannot reach it."""
    def no_reading(*args, **kwargs):
        raise AssertionError(f"tiny_params read a file: {args[:1]}")

    monkeypatch.setattr(builtins, "open", no_reading)
    monkeypatch.setattr(pathlib.Path, "read_text", no_reading)
    monkeypatch.setattr(pathlib.Path, "read_bytes", no_reading)
    assert tiny_params() == TINY_PARAMS and tiny_params() is not TINY_PARAMS


def test_repository_params_have_every_key_of_the_schema():
    """The shipped file is complete (whatever values a user gave it since)."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    assert set(flatten(raw)) == set(flatten(TINY_PARAMS))


@pytest.mark.parametrize("path, value, words", [
    (("topology", "image", "resolutoin"), 50, ["topology.image.resolutoin", "unknown key", "resolution"]),
    (("train", "epochs"), -1, ["train.epochs", "-1", "greater than 0"]),
    (("topology", "image", "resolution"), 0, ["topology.image.resolution", "greater than 0"]),
    (("distill", "tgd", "alpha"), 1.5, ["distill.tgd.alpha", "1.5", "less than or equal to 1"]),
    (("distill", "sp", "alpha"), 0.5, ["distill.sp.alpha", "unknown key", "gamma", "lambda"]),
    (("distill", "tdg"), {"alpha": 0.5}, ["distill.tdg", "unknown key", "tgd", "tpkd"]),
    (("train", "seed"), -1, ["train.seed=-1", "greater than or equal to 0"]),
    (("train", "seed"), 2**70, ["train.seed", "less than or equal to 4294967295"]),
    (("data", "root"), "", ["data.root=''", "empty string"]),
    (("train", "lr"), "fast", ["train.lr", "'fast'"]),
    (("train", "optimizer"), "adamw", ["train.optimizer", "adam", "sgd"]),
    (("data", "name"), "mnist", ["data.name", "mnist", "digits", "cifar10"]),
    (("models", "student"), "wrn15_1", ["models.student", "wrn15_1"]),
    (("distill", "methods"), ["kd", "magic"], ["distill.methods", "magic", "tgd"]),
    (("distill", "methods"), ["scratch"], ["distill.methods", "scratch", "train_student", "kd"]),
    (("distill", "methods"), [], ["distill.methods=[]", "at least one", "tgd"]),
    (("topology", "engine"), "slow", ["topology.engine", "slow", "fast", "ripser"]),
    (("topology", "image", "birth_range"), [0.3, 0.0], ["topology.image.birth_range", "low < high"]),
    (("topology", "n_jobs"), 0, ["topology.n_jobs", "-1"]),
    (("evaluate", "noise_std"), [0.1, -0.2], ["evaluate.noise_std", ">= 0"]),
])
def test_bad_values_fail_with_one_line_naming_the_key(path, value, words):
    message = _error(_set(tiny_params(), path, value))
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize("path", [("train", "lr"), ("topology", "image", "sigma"), ("distill", "sp", "gamma"),
                                  ("distill", "tgd", "alpha"), ("data", "test_fraction")])
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_non_finite_numbers_fail_naming_the_key(path, value):
    message = _error(_set(tiny_params(), path, value))
    assert f"{'.'.join(path)}=" in message and "finite" in message, message


def test_non_finite_inside_lists_fails_naming_the_key():
    message = _error(_set(tiny_params(), ("evaluate", "noise_std"), [0.0, math.inf]))
    assert "evaluate.noise_std" in message and "finite" in message


@pytest.mark.parametrize("path, words", [
    (("train", "epochs"), ["missing key train.epochs"]),
    (("data", "name"), ["missing key data.name"]),
    (("topology", "image", "sigma"), ["missing key topology.image.sigma"]),
    (("distill", "tgd", "alpha"), ["missing key distill.tgd.alpha"]),
    (("distill", "tgd"), ["missing section distill.tgd"]),
    (("train",), ["missing section train"]),
    (("topology", "signal"), ["missing section topology.signal"]),
])
def test_missing_key_or_section_fails_naming_it(path, words):
    raw = tiny_params()
    node = raw
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    message = _error(raw)
    for word in words:
        assert word in message, (word, message)


def test_unknown_section_is_named():
    raw = tiny_params()
    raw["trian"] = {"epochs": 3}
    with pytest.raises(ParamsError, match=r"trian: unknown key"):
        validate(raw)


def test_distill_schema_is_gathered_from_the_methods():
    distill = schema().model_fields["distill"].annotation
    assert set(distill.model_fields) == {"methods", "anneal", "teacher_cache", "kd", "sp", "tgd", "tpkd",
                                         "tgd_t1", "aver", "dkd"}
    tgd = validate(tiny_params()).distill.tgd
    assert set(tgd.model_dump(by_alias=True)) == {"lambda", "temperature", "kl_reduction", "alpha", "gamma"}


def test_a_block_may_be_left_out_for_a_method_that_does_not_run():
    raw = tiny_params(**{"distill.methods": ["kd"]})
    for name in ("sp", "tgd", "tpkd"):
        del raw["distill"][name]
    assert validate(raw).distill.tgd is None
    raw["distill"]["tgd"] = {"alpha": 0.5}  # given, it is validated whole
    assert "missing key distill.tgd.lambda" in _error(raw)


def test_long_values_are_cut_in_messages():
    message = _error(_set(tiny_params(), ("evaluate", "noise_std"), [-1.0] * 1000))
    assert "evaluate.noise_std" in message and len(message) < 800


def test_milestones_must_lie_inside_the_run():
    raw = tiny_params()
    raw["train"].update(schedule="step", milestones=[2, 50], epochs=10)
    with pytest.raises(ParamsError, match=r"milestones.*\[50\]"):
        validate(raw)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ParamsError, match="mapping of sections"):
        load_params(bad)


def test_paper_preset_is_overrides_only_and_applies_on_top(tmp_path, capsys):
    preset = yaml.safe_load((REPO / "presets" / "paper-cifar10.yaml").read_text())
    assert set(flatten(preset)) < set(flatten(TINY_PARAMS))  # overrides, never a full copy
    merged = validate(apply_overrides(tiny_params(), preset))
    assert merged.data.name == "cifar10" and merged.train.epochs == 20
    assert (merged.models.teacher_image, merged.models.student) == ("wrn16_3", "wrn16_1")
    assert merged.train.lr == 0.0005 and merged.data.limit_train == 120  # the rest: params'
    base = tmp_path / "params.yaml"
    base.write_text(yaml.safe_dump(tiny_params()))
    main([str(REPO / "presets" / "paper-cifar10.yaml"), "--params", str(base)])
    flags = capsys.readouterr().out.split()
    assert flags[:2] == ["-S", "data.name=cifar10"] and "train.epochs=20" in flags
    assert len(flags) == 2 * len(flatten(preset))


def test_preset_flags_are_shell_words_and_a_bad_preset_fails(tmp_path):
    base = tmp_path / "params.yaml"
    base.write_text(yaml.safe_dump(tiny_params()))
    preset = tmp_path / "p.yaml"
    preset.write_text("evaluate: {noise_std: [0.0, 0.5]}\ndata: {root: 'null'}\n")
    assert preset_flags(preset, base) == ["-S", "evaluate.noise_std=[0.0,0.5]", "-S", 'data.root="null"']
    preset.write_text("train: {epocs: 3}\n")
    with pytest.raises(ParamsError, match=r"train.epocs: unknown key"):
        preset_flags(preset, base)


def test_params_yaml_ships_the_published_topology_recipes():
    """The library's defaults for direct callers and params.yaml's values are one recipe; for
    images, params.yaml with the paper preset (the default's PIs are sized down to 16x16)."""
    from pipeline.topology import IMAGE_RECIPE, SIGNAL_RECIPE

    shipped = yaml.safe_load((REPO / "params.yaml").read_text())["topology"]
    paper = yaml.safe_load((REPO / "presets" / "paper-cifar10.yaml").read_text())["topology"]["image"]
    assert shipped["image"] != IMAGE_RECIPE and {**shipped["image"], **paper} == IMAGE_RECIPE
    assert shipped["signal"] == SIGNAL_RECIPE
