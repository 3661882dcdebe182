"""ONNX export: the file onnxruntime runs gives PyTorch's logits, for any batch, 2-D and 1-D."""
import json

import numpy as np
import onnx
import pytest
import torch

from conftest import TINY_PARAMS
from pipeline import layout
from pipeline.checkpoint import save_checkpoint
from pipeline.errors import ExportError
from pipeline.export import (Deployable, agreement, check_agreement, export_model, export_onnx,
                             onnx_latency_ms, onnx_logits, onnx_session)
from pipeline.inputs import Inputs, Normalizer, to_unit
from pipeline.metrics import predict
from pipeline.models import build_model
from pipeline.params import ExportParams, validate


def _deployable(arch, channels, dims, classes=4):
    torch.manual_seed(0)
    model = build_model(arch, channels, classes, dims=dims)
    model.eval()
    return Deployable(model, Normalizer([0.3] * channels, [0.2] * channels)).eval()


@pytest.mark.parametrize("arch, shape, dims", [("wrn10_1", (1, 16, 16), 2), ("wrn10_1", (6, 100), 1)])
def test_onnx_matches_pytorch_for_any_batch(tmp_path, arch, shape, dims):
    module = _deployable(arch, shape[0], dims)
    path = export_onnx(module, torch.rand(2, *shape), tmp_path / "m.onnx", 17, {"model": "scratch"})
    x = torch.rand(13, *shape)
    session = onnx_session(path)
    for batch in (1, 5, 13):  # traced at batch 2: the batch axis is dynamic
        found = agreement(predict(module, x), onnx_logits(session, x, batch))
        assert found["max_abs_logit_diff"] < 1e-4 and found["top1_agreement"] == 100.0
    graph = onnx.load(str(path))
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert {p.key: p.value for p in graph.metadata_props}["model"] == "scratch"


def test_the_normalisation_is_inside_the_graph(tmp_path):
    """The file takes inputs on [0, 1]: feeding it x equals the bare model on (x - mean) / std."""
    module = _deployable("wrn10_1", 1, 2)
    path = export_onnx(module, torch.rand(2, 1, 16, 16), tmp_path / "m.onnx", 17, {})
    x = torch.rand(3, 1, 16, 16)
    with torch.no_grad():
        bare = module.model((x - 0.3) / 0.2)[0]
    torch.testing.assert_close(onnx_logits(onnx_session(path), x, 3), bare, atol=1e-4, rtol=0)


def test_agreement_by_hand():
    reference = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [0.0, 3.0]])
    candidate = torch.tensor([[1.0, 0.5], [0.2, 1.0], [0.9, 1.0], [0.0, 2.5]])
    found = agreement(reference, candidate)  # row 3 flips its top-1; largest gap 1.1 (row 3)
    assert found["max_abs_logit_diff"] == pytest.approx(1.1)
    assert found["top1_agreement"] == 75.0


@pytest.mark.parametrize("found, culprit", [
    ({"max_abs_logit_diff": 0.01, "top1_agreement": 100.0}, "export.max_abs_diff"),
    ({"max_abs_logit_diff": float("nan"), "top1_agreement": 100.0}, "export.max_abs_diff"),
    ({"max_abs_logit_diff": 1e-6, "top1_agreement": 99.0}, "export.min_top1_agreement"),
])
def test_disagreement_fails_naming_the_model(found, culprit):
    with pytest.raises(ExportError, match=rf"^tgd: onnxruntime disagrees.*{culprit}"):
        check_agreement("tgd", found, ExportParams(**{**TINY_PARAMS["export"], "max_abs_diff": 1e-3, "min_top1_agreement": 100.0}))
    check_agreement("tgd", {"max_abs_logit_diff": 1e-6, "top1_agreement": 100.0}, ExportParams(**TINY_PARAMS["export"]))


def _workspace_with_scratch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    model = build_model("wrn10_1", 1, 3)
    meta = {"arch": "wrn10_1", "in_channels": 1, "num_classes": 3, "dims": 2, "input_key": "x", "epoch": 1}
    save_checkpoint(layout.model_dir("scratch") / "last.pt", model, meta)
    x = torch.randint(0, 256, (20, 16, 16, 1), dtype=torch.uint8)
    return Inputs(splits={"test": {"x": x, "y": torch.arange(20) % 3}}, classes=["a", "b", "c"],
                  modality="image", normalizers={"x": Normalizer([0.5], [0.25])})


def test_export_model_writes_a_checked_file_and_its_record(tmp_path, monkeypatch):
    inputs = _workspace_with_scratch(tmp_path, monkeypatch)
    record = export_model("scratch", inputs, validate(TINY_PARAMS))
    onnx_path = layout.export_dir("scratch") / "model.onnx"
    assert record["size_bytes"] == onnx_path.stat().st_size > 10_000
    assert record["n_checked"] == 20 and record["top1_agreement"] == 100.0
    assert json.loads((onnx_path.parent / "check.json").read_text())["classes"] == ["a", "b", "c"]
    props = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    assert json.loads(props["classes"]) == ["a", "b", "c"] and props["arch"] == "wrn10_1"
    assert sorted(p.name for p in onnx_path.parent.iterdir()) == ["check.json", "model.onnx"]
    x01 = to_unit(inputs.splits["test"]["x"])
    assert onnx_latency_ms(onnx_path, tuple(x01.shape[1:]), 1, 1, repeats=3) > 0


def test_a_failed_check_leaves_no_onnx_file(tmp_path, monkeypatch):
    inputs = _workspace_with_scratch(tmp_path, monkeypatch)
    # an onnxruntime that flips one answer in five
    monkeypatch.setattr("pipeline.export.agreement",
                        lambda reference, found: {"max_abs_logit_diff": 1e-7, "top1_agreement": 80.0})
    with pytest.raises(ExportError, match="^scratch: .*top-1 agreement 80.00 %"):
        export_model("scratch", inputs, validate(TINY_PARAMS))
    left = sorted(p.name for p in layout.export_dir("scratch").iterdir())
    assert left == []  # neither model.onnx nor the staged file, nor a check.json


def test_onnx_latency_is_measured_for_the_batch_asked(tmp_path):
    path = export_onnx(_deployable("wrn10_1", 1, 2), torch.rand(2, 1, 16, 16), tmp_path / "m.onnx", 17, {})
    assert np.isfinite(onnx_latency_ms(path, (1, 16, 16), 8, 0, repeats=2, warmup=0))
