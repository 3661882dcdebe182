"""The export stage: trained models as ONNX files, checked against PyTorch with onnxruntime.

Each exported file takes what the data pipeline stores, not normalised tensors: the training
split's per-channel normalisation is part of the graph, so a device only scales its input.

    input  "input":  float32 (batch, C, H, W) images on [0, 1] (uint8 / 255), channels first;
                     float32 (batch, C, L) sensor windows as `prepare` stores them, channels first;
                     float32 (batch, K, R, R) persistence images (the topology teacher).
    output "logits": float32 (batch, classes); softmax gives probabilities.

The batch axis is dynamic. The file carries the model's name, architecture, class names and
input description as ONNX metadata, and the identity of the checkpoint it was exported from
(`weights`: a digest of its weights; `fingerprint`: its training run's): evaluate times a
file only when that identity is its own model's checkpoint's (`verify_export`). Files go to
`data/export/<model>/model.onnx` next to `check.json` (the agreement with PyTorch), not into
`data/models/<model>/`: that folder is the training stage's output, and DVC forbids a second
stage writing inside another's output.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pipeline import layout
from pipeline.checkpoint import load_model, state_digest
from pipeline.errors import ExportError
from pipeline.inputs import Inputs, Normalizer, load_inputs, to_unit
from pipeline.metrics import logits_of, median_ms, predict
from pipeline.params import ExportParams, Params
from pipeline.store import write_json

INPUT, OUTPUT = "input", "logits"
INPUT_DESCRIPTION = {
    "image": "float32 (batch, C, H, W), pixels on [0, 1] (uint8 / 255), channels first",
    "signal": "float32 (batch, C, L), the window as prepared, channels first",
    "pi": "float32 (batch, K, R, R), persistence images of the topology stage",
}


class Deployable(nn.Module):
    """What is exported: the training split's normalisation, then the model, logits only."""

    def __init__(self, model: nn.Module, normalizer: Normalizer):
        super().__init__()
        self.model = model
        self.normalize = normalizer  # plain tensors, traced as constants

    def forward(self, x: Tensor) -> Tensor:
        return logits_of(self.model(self.normalize(x)))


def export_onnx(module: nn.Module, sample: Tensor, path: str | Path, opset: int,
                metadata: dict[str, str]) -> Path:
    """Write `module` (eval mode, on the CPU) as ONNX with a dynamic batch axis and metadata.

    Uses PyTorch's TorchScript-based exporter (`dynamo=False`): deprecated since PyTorch 2.9
    but present in the pinned release, deterministic, and about ten times faster per model than
    the torch.export-based one, which also needs the onnxscript package.
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the exporter's notice, every call
        torch.onnx.export(module.cpu().eval(), (sample.cpu(),), str(path), dynamo=False,
                          input_names=[INPUT], output_names=[OUTPUT], opset_version=opset,
                          dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
    graph = onnx.load(str(path))
    onnx.helper.set_model_props(graph, metadata)
    onnx.save(graph, str(path))
    return path


def check_opset(opset: int) -> None:
    """`export.opset` within the opsets of the installed exporter, from torch.onnx's own constants
    (the params schema reads the same file without torch; this is the check at the start of the
    export stage, before any work, should that reading have found nothing)."""
    try:
        from torch.onnx import _constants
        low, high = _constants.ONNX_MIN_OPSET, _constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET
    except (ImportError, AttributeError):  # another PyTorch layout: the exporter itself decides
        return
    if not low <= opset <= high:
        raise ExportError(f"export.opset={opset}: not supported by the installed PyTorch's ONNX exporter "
                          f"(opsets {low} to {high}); set export.opset in params.yaml")


def onnx_session(path: str | Path, threads: int = 1):
    """An onnxruntime CPU session with `threads` intra-op threads (0 = onnxruntime's choice);
    a missing or unreadable file fails in one line naming it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    if not Path(path).is_file():
        raise ExportError(f"{path}: ONNX file not found; run the export stage (dvc repro export)")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime's InvalidProtobuf, InvalidGraph, Fail, ...
        raise ExportError(f"{path}: not a readable ONNX file ({type(error).__name__}: truncated or "
                          "edited?); re-run the export stage (dvc repro -f export)") from None


def onnx_logits(session, x: Tensor, batch_size: int) -> Tensor:
    """The session's logits on every row of `x`, batch by batch."""
    outs = [session.run([OUTPUT], {INPUT: x[i:i + batch_size].numpy()})[0]
            for i in range(0, len(x), batch_size)]
    return torch.from_numpy(np.concatenate(outs))


def agreement(reference: Tensor, candidate: Tensor) -> dict[str, float]:
    """Max |logit difference| and the share (%) of rows with the same top-1 class."""
    return {"max_abs_logit_diff": float((reference - candidate).abs().max()),
            "top1_agreement": 100.0 * float((reference.argmax(1) == candidate.argmax(1)).double().mean())}


def check_agreement(name: str, found: dict[str, float], cfg: ExportParams) -> None:
    """Fail, naming the model and the params keys, when ONNX and PyTorch disagree."""
    within = found["max_abs_logit_diff"] <= cfg.max_abs_diff  # False for NaN too
    if not within or found["top1_agreement"] < cfg.min_top1_agreement:
        raise ExportError(
            f"{name}: onnxruntime disagrees with PyTorch on the test inputs: max |logit difference| "
            f"{found['max_abs_logit_diff']:.3g} (export.max_abs_diff={cfg.max_abs_diff:g}), top-1 "
            f"agreement {found['top1_agreement']:.2f} % (export.min_top1_agreement={cfg.min_top1_agreement:g})")


def onnx_latency_ms(path: str | Path, input_shape: tuple[int, ...], batch: int, threads: int,
                    repeats: int, warmup: int = 3) -> float:
    """Median milliseconds of one onnxruntime call on a batch of zeros of `input_shape`."""
    session = onnx_session(path, threads)
    x = np.zeros((batch, *input_shape), dtype=np.float32)
    return median_ms(lambda: session.run([OUTPUT], {INPUT: x}), repeats, warmup)


def weights_digest(model: nn.Module) -> str:
    """The identity of a model's weights (what export records and evaluate checks)."""
    return state_digest(model.state_dict())


def verify_export(name: str, model: nn.Module) -> Path:
    """`name`'s ONNX file, once its metadata says it was exported from `model`'s weights (the
    checkpoint evaluate loaded); else one line naming the file and the mismatch."""
    path = layout.export_dir(name) / "model.onnx"
    meta = onnx_session(path).get_modelmeta().custom_metadata_map
    source, weights, mine = meta.get("model"), meta.get("weights"), weights_digest(model)
    again = "re-run the export stage (dvc repro -f export)"
    if source is None or weights is None:
        raise ExportError(f"{path}: records no checkpoint it was exported from (model "
                          f"{source!r}, weights {weights!r}); {again}")
    if source != name:
        raise ExportError(f"{path}: exported from {source}'s checkpoint (weights {weights[:12]}), "
                          f"not {name}'s; {again}")
    if weights != mine:
        raise ExportError(f"{path}: exported from other weights of {name} ({weights[:12]}) than its "
                          f"checkpoint's ({mine[:12]}); {again}")
    check = read_check(name)
    if check is None or (check.get("model"), check.get("weights")) != (name, weights):
        raise ExportError(f"{path.with_name('check.json')}: not the record of this model.onnx "
                          f"(model {None if check is None else check.get('model')!r}); {again}")
    return path


def model_names(params: Params) -> list[str]:
    """The models the stage exports: every student, the teachers when `export.teachers`."""
    students = layout.student_names(params.distill.methods)
    return [*layout.TEACHER_MODELS, *students] if params.export.teachers else students


def _test_input(inputs: Inputs, key: str) -> Tensor:
    stored = inputs.splits["test"][key]
    return to_unit(stored) if key == "x" else stored.float()


def export_model(name: str, inputs: Inputs, params: Params) -> dict[str, Any]:
    """Export one model, compare onnxruntime with PyTorch on the whole test split, keep the file
    only when they agree (a failed check leaves no model.onnx behind)."""
    cfg, checkpoint = params.export, params.evaluate.checkpoint
    model, meta = load_model(layout.model_dir(name) / f"{checkpoint}.pt")
    weights = weights_digest(model)  # before any call: the identity evaluate checks the file by
    key = meta["input_key"]
    x = _test_input(inputs, key)
    module = Deployable(model, inputs.normalizers[key]).eval()
    reference = predict(module, x, cfg.batch_size)
    kind = "pi" if key == "pi" else inputs.modality
    metadata = {"model": name, "arch": meta["arch"], "checkpoint": checkpoint, "weights": weights,
                "fingerprint": str(meta.get("fingerprint", "")),
                "classes": json.dumps(inputs.classes), "input": INPUT_DESCRIPTION[kind]}
    target = layout.export_dir(name) / "model.onnx"
    staged = export_onnx(module, x[:2], target.with_suffix(".onnx.tmp"), cfg.opset, metadata)
    try:
        found = agreement(reference, onnx_logits(onnx_session(staged), x, cfg.batch_size))
        check_agreement(name, found, cfg)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    os.replace(staged, target)
    record = {**metadata, "classes": inputs.classes, "epoch": meta.get("epoch"), "opset": cfg.opset,
              "input_shape": ["batch", *x.shape[1:]], "n_checked": len(x), **found,
              "size_bytes": target.stat().st_size}
    write_json(target.with_name("check.json"), record)
    return record


def export_all(params: Params) -> list[dict[str, Any]]:
    """The export stage: every model of `model_names`, each checked; returns their records."""
    check_opset(params.export.opset)  # before any work: the installed exporter's own range
    inputs = load_inputs(prepared_dir=layout.PREPARED,
                         topology_dir=layout.TOPOLOGY if params.export.teachers else None)
    return [export_model(name, inputs, params) for name in model_names(params)]


def read_check(name: str) -> dict[str, Any] | None:
    """A model's export record, or None when the model was not exported."""
    path = layout.export_dir(name) / "check.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (UnicodeDecodeError, ValueError):
        record = None
    if not isinstance(record, dict):
        raise ExportError(f"{path}: not an export record (damaged JSON); re-run the export stage "
                          "(dvc repro -f export)")
    return record
