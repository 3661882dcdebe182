"""A hostile user against the export and evaluate stages: an opset the exporter does not know, an
ONNX file copied over another model's, a file of other weights, a truncated file, a damaged
record. Each is one line naming the file or the key, never a traceback or a wrong report."""
import shutil

import pytest
import torch
import yaml
from torch.onnx import _constants as onnx_constants

import stages.export
from conftest import TINY_PARAMS, tiny_params
from pipeline import evaluation, layout
from pipeline.checkpoint import save_checkpoint
from pipeline.errors import ExportError, ParamsError
from pipeline.export import check_opset, export_all, export_model, onnx_session, verify_export
from pipeline.inputs import Inputs, Normalizer
from pipeline.models import build_model
from pipeline.params import EvaluateParams, validate
from stages._cli import run

META = {"arch": "wrn10_1", "in_channels": 1, "num_classes": 3, "dims": 2, "input_key": "x", "epoch": 1}
AGAIN = r"; re-run the export stage \(dvc repro -f export\)$"
# the installed exporter's own range (7 to 20 in PyTorch 2.14)
OPSETS = f"opsets {onnx_constants.ONNX_MIN_OPSET} to {onnx_constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET}"


def _save(name: str, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model("wrn10_1", 1, 3).eval()
    save_checkpoint(layout.model_dir(name) / "last.pt", model, {**META, "fingerprint": f"run-{name}-{seed}"})
    return model


def _inputs() -> Inputs:
    x = torch.randint(0, 256, (12, 16, 16, 1), dtype=torch.uint8)
    return Inputs(splits={"test": {"x": x, "y": torch.arange(12) % 3}}, classes=["a", "b", "c"],
                  modality="image", normalizers={"x": Normalizer([0.5], [0.25])})


@pytest.fixture
def exported(tmp_path, monkeypatch):
    """kd and tgd trained (different weights) and exported, in a workspace."""
    monkeypatch.chdir(tmp_path)
    models = {"kd": _save("kd", 0), "tgd": _save("tgd", 1)}
    inputs, params = _inputs(), validate(TINY_PARAMS)
    for name in models:
        export_model(name, inputs, params)
    return models


def _loaded(name: str) -> torch.nn.Module:
    from pipeline.checkpoint import load_model
    return load_model(layout.model_dir(name) / "last.pt")[0]


# --------------------------------------------------------------------------------- the opset
def test_an_opset_the_exporter_does_not_know_fails_at_validation_naming_the_key():
    with pytest.raises(ParamsError) as info:
        validate(tiny_params(**{"export.opset": 99}))
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert "export.opset=99" in message and OPSETS in message


def test_the_export_stage_checks_the_opset_before_any_work(monkeypatch):
    monkeypatch.setattr("pipeline.params.exporter_opsets", lambda: None)  # torch's file not found
    params = validate(tiny_params(**{"export.opset": 99}))  # the schema could not tell
    monkeypatch.setattr("pipeline.export.load_inputs", lambda **_: pytest.fail("work before the check"))
    with pytest.raises(ExportError, match=rf"^export\.opset=99: not supported by the installed PyTorch's "
                                          rf"ONNX exporter \({OPSETS}\); set export.opset in params.yaml$"):
        export_all(params)
    check_opset(17)


def test_the_export_command_is_one_line_on_a_bad_opset(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(**{"export.opset": 99})))
    with pytest.raises(SystemExit) as info:
        run(stages.export.main)
    err = capsys.readouterr().err.strip()
    assert info.value.code == 1 and len(err.splitlines()) == 1, err
    assert err.startswith("error: params.yaml: export.opset=99: opset 99 is not supported")


# ------------------------------------------------------------------- which checkpoint a file is of
def test_evaluate_refuses_a_file_copied_from_another_model(exported):
    shutil.copy(layout.export_dir("tgd") / "model.onnx", layout.export_dir("kd") / "model.onnx")
    cfg = EvaluateParams(**TINY_PARAMS["evaluate"])
    with pytest.raises(ExportError, match=r"^data/export/kd/model\.onnx: exported from tgd's checkpoint "
                                          r"\(weights [0-9a-f]{12}\), not kd's" + AGAIN):
        evaluation.cost_metrics("kd", _loaded("kd"), (1, 16, 16), cfg)
    assert verify_export("tgd", _loaded("tgd")) == layout.export_dir("tgd") / "model.onnx"


def test_evaluate_refuses_a_file_of_other_weights_of_the_same_model(exported):
    _save("kd", 5)  # retrained by hand after the export
    with pytest.raises(ExportError, match=r"^data/export/kd/model\.onnx: exported from other weights of kd "
                                          r"\([0-9a-f]{12}\) than its checkpoint's \([0-9a-f]{12}\)" + AGAIN):
        verify_export("kd", _loaded("kd"))


def test_evaluate_refuses_a_record_of_another_export(exported):
    shutil.copy(layout.export_dir("tgd") / "check.json", layout.export_dir("kd") / "check.json")
    with pytest.raises(ExportError, match=r"^data/export/kd/check\.json: not the record of this "
                                          r"model\.onnx \(model 'tgd'\)" + AGAIN):
        verify_export("kd", _loaded("kd"))


def test_a_file_without_the_checkpoint_identity_is_not_trusted(exported, tmp_path):
    import onnx

    path = layout.export_dir("kd") / "model.onnx"
    graph = onnx.load(str(path))
    kept = [p for p in graph.metadata_props if p.key != "weights"]
    del graph.metadata_props[:]
    graph.metadata_props.extend(kept)
    onnx.save(graph, str(path))
    with pytest.raises(ExportError, match=r"^data/export/kd/model\.onnx: records no checkpoint it was "
                                          r"exported from \(model 'kd', weights None\)" + AGAIN):
        verify_export("kd", _loaded("kd"))


# ------------------------------------------------------------------------------ damaged files
def test_a_truncated_onnx_file_is_one_line_naming_it(exported):
    path = layout.export_dir("kd") / "model.onnx"
    path.write_bytes(path.read_bytes()[:5000])
    pattern = (r"^data/export/kd/model\.onnx: not a readable ONNX file \(InvalidProtobuf: truncated or "
               r"edited\?\)" + AGAIN)
    with pytest.raises(ExportError, match=pattern):
        verify_export("kd", _loaded("kd"))
    with pytest.raises(ExportError, match=pattern):
        onnx_session(path)


def test_a_missing_onnx_file_beside_its_record_is_one_line(exported):
    (layout.export_dir("kd") / "model.onnx").unlink()
    with pytest.raises(ExportError, match=r"^data/export/kd/model\.onnx: ONNX file not found; run the "
                                          r"export stage \(dvc repro export\)$"):
        verify_export("kd", _loaded("kd"))


@pytest.mark.parametrize("junk", [b"\xff\xfe\x00garbage", b"", b"[1, 2]"])
def test_a_damaged_record_is_one_line_naming_it(exported, junk):
    (layout.export_dir("kd") / "check.json").write_bytes(junk)
    cfg = EvaluateParams(**TINY_PARAMS["evaluate"])
    with pytest.raises(ExportError, match=r"^data/export/kd/check\.json: not an export record \(damaged "
                                          r"JSON\)" + AGAIN):
        evaluation.cost_metrics("kd", _loaded("kd"), (1, 16, 16), cfg)
