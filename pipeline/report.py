"""The evaluate stage's logic: every trained model on the test split, side by side.

For each model: top-1 (and top-5 beyond 10 classes) accuracy, per-class accuracy, a confusion
matrix plot, expected calibration error, accuracy under Gaussian input noise, parameters, MACs
and CPU latency per image. Flat metrics (`<model>_acc`, `<model>_ece`, ...) go to one JSON file
for `dvc metrics show` / `dvc exp show`; the details and a markdown table go to the report.
"""
from __future__ import annotations

from typing import Any

import torch

from pipeline import evaluate as ev
from pipeline import layout
from pipeline.checkpoint import load_model
from pipeline.inputs import Inputs, load_inputs, to_unit
from pipeline.params import Params, section
from pipeline.runtime import select_device
from pipeline.store import write_json

MODELS, PREPARED, TOPOLOGY = layout.MODELS, layout.PREPARED, layout.TOPOLOGY
METRICS, REPORT = layout.EVALUATE_METRICS, layout.REPORT
PLOTS = layout.PLOTS / "evaluate"  # data/plots/persistence_images.png is the topology stage's

TABLE_COLUMNS = [
    ("model", "model", None), ("input", "input", None), ("arch", "arch", None),
    ("acc", "acc %", ".2f"), ("top5", "top-5 %", ".2f"), ("ece", "ECE", ".4f"),
    ("params", "params", ","), ("macs", "MACs", ","), ("latency_ms", "CPU ms/img", ".2f"),
]


def model_names(params: Params) -> list[str]:
    return ["teacher_image", "teacher_topology", "scratch", *params.distill.methods]


def evaluate_one(name: str, inputs: Inputs, cfg: dict[str, Any], checkpoint: str,
                 device: torch.device) -> dict[str, Any]:
    model, meta = load_model(MODELS / name / f"{checkpoint}.pt")
    key = meta["input_key"]
    stored = inputs.splits["test"][key]
    unit = to_unit(stored) if key == "x" else stored
    # Noise is added to raw inputs on [0, 1]; persistence images are no such input, so the
    # topology teacher gets clean accuracy only (noise would need new topology, not ours to do).
    noisy_cfg = dict(cfg, noise_std=cfg["noise_std"] if key == "x" else [])
    result = ev.evaluate_model(model, unit, inputs.splits["test"]["y"], inputs.num_classes,
                               inputs.normalizers[key], noisy_cfg, device=device,
                               clamp=inputs.modality == "image")
    shape = tuple(unit.shape[1:])
    result.update({
        "model": name, "input": "persistence image" if key == "pi" else inputs.modality,
        "arch": meta["arch"], "epoch": meta.get("epoch"), "checkpoint": checkpoint,
        "params": ev.count_parameters(model), "macs": ev.count_macs(model, shape),
        "latency_ms": ev.cpu_latency_ms(model, shape, repeats=cfg["latency_repeats"]),
    })
    ev.plot_confusion_matrix(result["confusion"], inputs.classes, PLOTS / f"confusion_{name}.png",
                             title=f"{name} ({meta['arch']}), test accuracy {result['acc']:.2f} %")
    ev.plot_reliability(result["calibration"], PLOTS / f"reliability_{name}.png",
                        title=f"{name}: ECE {result['ece']:.4f}")
    return result


def flat_metrics(results: list[dict[str, Any]]) -> dict[str, float]:
    flat: dict[str, float] = {}
    for r in results:
        name = r["model"]
        for key in ("acc", "top5", "ece", "params", "macs", "latency_ms"):
            if r.get(key) is not None:
                flat[f"{name}_{key}"] = r[key]
        for std, acc in r.get("noise_acc", {}).items():
            flat[f"{name}_noise{std}_acc"] = acc
    return flat


def markdown_report(results: list[dict[str, Any]], params: Params, classes: int) -> str:
    stds = sorted({s for r in results for s in r.get("noise_acc", {})}, key=float)
    noise_columns = [(f"noise_{s}", f"acc @ noise {s}", ".2f") for s in stds]
    rows = [{**r, **{f"noise_{s}": a for s, a in r.get("noise_acc", {}).items()}} for r in results]
    columns = [c for c in TABLE_COLUMNS if c[0] != "top5" or classes > 10]
    lines = [
        "# Evaluation report", "",
        f"Data set `{params.data.name}`, {classes} classes; checkpoint `{params.evaluate.checkpoint}` of "
        "every model (`last` = the final epoch; `best` = the epoch with the best test accuracy, "
        "which is optimistic).", "",
        ev.comparison_table(rows, columns), "",
        "## Robustness to Gaussian noise on the raw input (std on the [0, 1] scale)", "",
        ev.comparison_table(rows, [("model", "model", None), *noise_columns]), "",
        "The topology teacher reads persistence images, not raw inputs: no noise figures for it.", "",
    ]
    return "\n".join(lines)


def evaluate_all(params: Params) -> list[dict[str, Any]]:
    cfg = section(params, "evaluate")
    device = select_device(params.train.device)
    inputs = load_inputs(prepared_dir=PREPARED, topology_dir=TOPOLOGY)
    results = [evaluate_one(name, inputs, cfg, cfg["checkpoint"], device) for name in model_names(params)]
    write_json(METRICS, flat_metrics(results))
    REPORT.mkdir(parents=True, exist_ok=True)
    write_json(REPORT / "report.json", results)
    (REPORT / "report.md").write_text(markdown_report(results, params, inputs.num_classes))
    return results
