"""params.yaml validation: every bad key fails early with one line naming it."""
from pathlib import Path

import pytest
import yaml

from pipeline.errors import ParamsError
from pipeline.params import load_params, section, validate

REPO = Path(__file__).resolve().parents[1]


def repo_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_repository_params_are_valid_and_complete():
    params = load_params(REPO / "params.yaml")
    assert params.data.name == "digits"
    assert section(params, "distill")["lambda"] == 0.9  # params.yaml's own key name survives
    assert params.topology.image.resolution == 50 and params.topology.signal.resolution == 64


@pytest.mark.parametrize("path, value, words", [
    (("topology", "image", "resolutoin"), 50, ["topology.image.resolutoin", "unknown key", "resolution"]),
    (("train", "epochs"), -1, ["train.epochs", "-1", "greater than 0"]),
    (("topology", "image", "resolution"), 0, ["topology.image.resolution", "greater than 0"]),
    (("distill", "alpha"), 1.5, ["distill.alpha", "1.5", "less than or equal to 1"]),
    (("train", "lr"), "fast", ["train.lr", "'fast'"]),
    (("train", "optimizer"), "adamw", ["train.optimizer", "adam", "sgd"]),
    (("data", "name"), "mnist", ["data.name", "mnist", "digits", "cifar10"]),
    (("models", "student"), "wrn15_1", ["models.student", "wrn15_1"]),
    (("distill", "methods"), ["kd", "magic"], ["distill.methods", "magic", "tgd"]),
    (("distill", "methods"), ["scratch"], ["distill.methods", "scratch"]),
    (("topology", "image", "birth_range"), [0.3, 0.0], ["topology.image.birth_range", "low < high"]),
    (("topology", "n_jobs"), 0, ["topology.n_jobs", "-1"]),
    (("evaluate", "noise_std"), [0.1, -0.2], ["evaluate.noise_std", ">= 0"]),
])
def test_bad_values_fail_with_one_line_naming_the_key(path, value, words):
    raw = repo_params()
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ParamsError) as error:
        validate(raw, "params.yaml")
    message = str(error.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


def test_unknown_section_is_named():
    raw = repo_params()
    raw["trian"] = {"epochs": 3}
    with pytest.raises(ParamsError, match=r"trian: unknown key"):
        validate(raw)


def test_milestones_must_lie_inside_the_run():
    raw = repo_params()
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


def test_paper_preset_is_valid_and_only_changes_scale():
    preset = yaml.safe_load((REPO / "presets" / "paper-cifar10.yaml").read_text())
    validate(preset, "presets/paper-cifar10.yaml")

    def keys(tree, prefix=""):
        return {prefix + k for k, v in tree.items() for k in ([k] if not isinstance(v, dict) else [])} | {
            k2 for k, v in tree.items() if isinstance(v, dict) for k2 in keys(v, prefix + k + ".")}

    assert keys(preset) == keys(repo_params())
    assert preset["data"]["name"] == "cifar10"
    assert preset["models"] == {"teacher_image": "wrn16_3", "teacher_topology": "wrn16_3", "student": "wrn16_1"}
    assert preset["train"]["epochs"] == 20 and preset["train"]["optimizer"] == "adam"
    assert preset["train"]["lr"] == 0.0005 and preset["train"]["batch_size"] == 64
