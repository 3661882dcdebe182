"""The evaluate stage: every trained model on the test split, side by side.

Per model: top-1 (and top-5 beyond 10 classes) accuracy, per-class accuracy, confusion matrix,
expected calibration error, accuracy under Gaussian input noise, parameters and MACs, and from
the model's training `summary.json` the best epoch's test accuracy and that epoch (`best_acc`,
`best_epoch`: optimistic, the epoch is chosen on the test set, as the TGD authors' code reports
it; `acc` stays the accuracy of the `evaluate.checkpoint` checkpoint, `last` by default) (in
`data/metrics/evaluate.json`, flat `<model>_<metric>` keys, the declared DVC metrics), and the
CPU latencies of PyTorch and of the exported ONNX file (`data/metrics/timing.json`: kept in Git
with every run but not a declared metric, so that timing noise stays out of `dvc exp show` and
`dvc metrics diff`). The report (`data/report/`) holds the tables and plain-words warnings;
`data/plots/` the figures that dvc.yaml's top-level plots name.
"""
from __future__ import annotations

import json
from typing import Any

import torch
from tabulate import tabulate
from torch import Tensor, nn

from pipeline import figures, layout
from pipeline import metrics as M
from pipeline.checkpoint import load_model
from pipeline.errors import CheckpointError
from pipeline.export import onnx_latency_ms, read_check, verify_export
from pipeline.inputs import Inputs, Normalizer, load_inputs, to_unit
from pipeline.params import EvaluateParams, Params
from pipeline.store import write_json
from pipeline.runtime import select_device
from pipeline.titles import count, dataset_title

QUALITY_KEYS = ("acc", "best_acc", "best_epoch", "top5", "ece", "params", "macs",
                "onnx_bytes")                                          # -> evaluate.json
TIMING_KEYS = ("torch_b1_ms", "onnx_b1_ms", "onnx_b64_ms")            # -> timing.json


def model_names(params: Params) -> list[str]:
    return [*layout.TEACHER_MODELS, *layout.student_names(params.distill.methods)]


def prediction_metrics(model: nn.Module, x01: Tensor, y: Tensor, num_classes: int,
                       normalizer: Normalizer | None, cfg: EvaluateParams, noise: bool,
                       device: str | torch.device = "cpu", clamp: bool = True) -> dict[str, Any]:
    """What one model's predictions score on one split (`x01`: inputs on [0, 1] or PIs).

    Noise levels above 0 only (σ = 0 is `acc` itself), and only when `noise` is true.
    """
    logits = predict_checked(model, x01, y, num_classes, normalizer, cfg.batch_size, device)
    y = y.cpu().long()
    out: dict[str, Any] = {"n": len(y), "acc": M.topk_accuracy(logits, y, 1)}
    if num_classes > 10:
        out["top5"] = M.topk_accuracy(logits, y, 5)
    out["ece"] = M.calibration_error(logits, y, cfg.ece_bins)
    out["per_class_acc"] = M.per_class_accuracy(logits, y, num_classes)
    out["confusion"] = M.confusion_matrix(logits, y, num_classes).tolist()
    stds = [s for s in cfg.noise_std if s > 0] if noise else []
    out["noise_acc"] = M.noise_robustness(model, x01, y, stds, transform=normalizer, seed=0,
                                          batch_size=cfg.batch_size, device=device, clamp=clamp)
    out["calibration"] = M.reliability_bins(logits, y, cfg.ece_bins)
    return out


def predict_checked(model: nn.Module, x01: Tensor, y: Tensor, num_classes: int,
                    normalizer: Normalizer | None, batch_size: int, device) -> Tensor:
    logits = M.predict(model, x01, batch_size=batch_size, device=device, transform=normalizer)
    if logits.shape != (len(y), num_classes):
        raise ValueError(f"model outputs {tuple(logits.shape)} logits; the split has "
                         f"{len(y)} samples of {num_classes} classes")
    return logits


def cost_metrics(name: str, model: nn.Module, shape: tuple[int, ...], cfg: EvaluateParams) -> dict[str, Any]:
    """Size and speed: parameters, MACs, PyTorch batch-1 latency on one thread, and, for an
    exported model, the ONNX file's size, agreement and onnxruntime latencies."""
    out: dict[str, Any] = {"params": M.count_parameters(model), "macs": M.count_macs(model, shape),
                           "torch_b1_ms": M.cpu_latency_ms(model, shape, repeats=cfg.latency_repeats)}
    check = read_check(name)
    if check is not None:
        onnx = verify_export(name, model)  # exported from this very checkpoint, else one line
        # a batch call does `latency_batch` times the work: fewer calls give as steady a median
        batch_repeats = max(3, cfg.latency_repeats // 4)
        out.update(onnx_bytes=check["size_bytes"], onnx_max_abs_logit_diff=check["max_abs_logit_diff"],
                   onnx_top1_agreement=check["top1_agreement"],
                   onnx_b1_ms=onnx_latency_ms(onnx, shape, 1, 1, cfg.latency_repeats),
                   onnx_b64_ms=onnx_latency_ms(onnx, shape, cfg.latency_batch, 0, batch_repeats, warmup=1))
    return out


def best_epoch_record(name: str) -> dict[str, Any]:
    """`{best_acc, best_epoch}` of `name` from its training stage's `summary.json`: the test accuracy
    of its best epoch and that epoch (1-based), chosen on the test set, hence optimistic."""
    path = layout.model_dir(name) / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file; the training stage of {name} writes it "
                              "when it finishes (`dvc repro`)") from None
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path}: cannot read it as JSON ({error})") from None
    keys = (f"{name}_best_acc", f"{name}_best_epoch")
    missing = [k for k in keys if not isinstance(summary, dict) or summary.get(k) is None]
    if missing:
        raise CheckpointError(f"{path} has no {' or '.join(missing)}: an older training stage wrote "
                              f"it; re-run the stage that trains {name}")
    return {"best_acc": float(summary[keys[0]]), "best_epoch": int(summary[keys[1]])}


def evaluate_one(name: str, inputs: Inputs, params: Params, device: torch.device) -> dict[str, Any]:
    cfg = params.evaluate
    model, meta = load_model(layout.model_dir(name) / f"{cfg.checkpoint}.pt")
    key = meta["input_key"]
    stored = inputs.splits["test"][key]
    unit = to_unit(stored) if key == "x" else stored
    # Noise goes on raw inputs on [0, 1]; persistence images are no such input, so the topology
    # teacher gets clean accuracy only (noisy PIs would need the topology of noisy inputs).
    result = prediction_metrics(model, unit, inputs.splits["test"]["y"], inputs.num_classes,
                                inputs.normalizers[key], cfg, noise=key == "x", device=device,
                                clamp=inputs.modality == "image")
    result.update(model=name, arch=meta["arch"], epoch=meta.get("epoch"), checkpoint=cfg.checkpoint,
                  input="persistence image" if key == "pi" else inputs.modality,
                  **best_epoch_record(name), **cost_metrics(name, model, tuple(unit.shape[1:]), cfg))
    return result


def flat_metrics(results: list[dict[str, Any]], keys: tuple[str, ...], noise: bool) -> dict[str, float]:
    """`{<model>_<key>: value}` for the metrics files (absent values are left out)."""
    flat: dict[str, float] = {}
    for r in results:
        flat.update({f"{r['model']}_{k}": r[k] for k in keys if r.get(k) is not None})
        if noise:
            flat.update({f"{r['model']}_noise{s}_acc": a for s, a in r["noise_acc"].items()})
    return flat


def dataset_seed(params: Params) -> str:
    """`CIFAR-10, seed 0`: the data set by its display name (`data.name` names a loader)."""
    return f"{dataset_title(params.data.name, params.data.root)}, seed {params.train.seed}"


def _live_series(model: str, metric: str) -> list[tuple[int, float]]:
    return figures.read_live_series(layout.live_dir(model) / "plots" / "metrics" / f"{model}_{metric}.tsv")


def write_plot_tables(params: Params) -> None:
    """The per-epoch series, from the training stages' DVCLive logs: as the CSVs dvc.yaml's line
    charts draw, and as PNGs of the same series (Vega needs a CDN; a PNG reads offline)."""
    curves = {m: c for m in model_names(params) if (c := _live_series(m, "acc"))}
    figures.write_series(layout.EVALUATE_PLOTS / "test_accuracy.csv", curves, "test_accuracy")
    epochs = max((e for c in curves.values() for e, _ in c), default=0)
    figures.plot_curves({"": curves}, layout.EVALUATE_PLOTS / "test_accuracy.png",
                        f"Test accuracy per epoch, every model ({dataset_seed(params)}, {count(epochs, 'epoch')})",
                        "test accuracy (%)", empty="no model logged a test accuracy (data/live/<model>)")
    # teacher 2's share, logged by the two-teacher methods (tgd, tpkd): the CSV is tgd's
    shares = {m: {f"group {g}": s for g in (1, 2, 3) if (s := _live_series(m, f"share_g{g}"))}
              for m in params.distill.methods}
    figures.write_series(layout.EVALUATE_PLOTS / "tgd_teacher2_share.csv", shares.get("tgd", {}), "teacher2_share")
    teacher2 = "raw images" if params.models.teacher_topology_input == "x" else "topology"
    figures.plot_curves(shares, layout.EVALUATE_PLOTS / "teacher2_share.png",
                        f"Share of teacher 2 ({teacher2}) in the merged similarity maps, per group and epoch "
                        f"({dataset_seed(params)})", "teacher-2 share of the merged map (0-1)",
                        empty=f"No two-teacher method (tgd, tpkd) logged teacher 2's share: distill.methods is "
                              f"[{', '.join(params.distill.methods)}]")


def write_figures(results: list[dict[str, Any]], params: Params, classes: list[str]) -> None:
    where = f"test split of {dataset_seed(params)}, {params.evaluate.checkpoint} checkpoints"
    by_name = {r["model"]: r for r in results}
    figures.plot_confusions({n: r["confusion"] for n, r in by_name.items()}, classes,
                            layout.EVALUATE_PLOTS / "confusion.png", f"Confusion matrices ({where})")
    figures.plot_reliability({n: r["calibration"] for n, r in by_name.items()},
                             {n: r["ece"] for n, r in by_name.items()},
                             layout.EVALUATE_PLOTS / "reliability.png", f"Reliability diagrams ({where})")
    students = [by_name[n] for n in layout.student_names(params.distill.methods)]
    figures.plot_students(students, layout.EVALUATE_PLOTS / "students.png",
                          f"Students: accuracy clean and under Gaussian input noise, and ECE ({where})",
                          chance=100.0 / len(classes))
    write_plot_tables(params)


def warnings_in_words(results: list[dict[str, Any]], methods: list[str]) -> list[str]:
    """Plain-words warnings: a teacher weaker than the scratch student, a distilled student
    below it."""
    by_name = {r["model"]: r for r in results}
    scratch = by_name["scratch"]["acc"]
    lines = []
    for teacher, knob in (("teacher_image", "models.teacher_image, train.epochs"),
                          ("teacher_topology", "models.teacher_topology, topology.*; its weight in tgd and tpkd is 1 - distill.<method>.alpha")):
        if by_name[teacher]["acc"] < scratch:
            lines.append(f"The {teacher} ({by_name[teacher]['acc']:.2f} %) is less accurate than the scratch "
                         f"student ({scratch:.2f} %): students distilled from it are pulled toward a worse "
                         f"classifier ({knob}).")
    below = [m for m in methods if by_name[m]["acc"] < scratch]
    for m in below:
        lines.append(f"The {m} student ({by_name[m]['acc']:.2f} %) is below the scratch student "
                     f"({scratch:.2f} %): {m} distillation did not help on this run.")
    return lines


def _table(results: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    """A markdown table of `results`; columns (key, header, format); `–` where absent."""
    rows = [[r.get(key) for key, _, _ in columns] for r in results]
    return tabulate(rows, headers=[h for _, h, _ in columns], tablefmt="pipe",
                    floatfmt=[f for _, _, f in columns], intfmt=",", missingval="–")


def best_note(checkpoint: str) -> str:
    """What the comparison table's `best acc % (optimistic)` is, beside what `acc %` is."""
    acc = ("the final epoch's, chosen without looking at the test set" if checkpoint == "last" else
           "the best epoch's too, so just as optimistic")
    return ("best acc % (optimistic): each model's best epoch's test accuracy, the epoch chosen on "
            "the test set itself, as the TGD authors' code reports it (from its training summary.json); "
            f"acc % is the `{checkpoint}` checkpoint's (evaluate.checkpoint): {acc}.")


def comparison_table(results: list[dict[str, Any]], classes: int) -> str:
    """Every model side by side; `best acc % (optimistic)` and `best epoch` beside `acc %`
    (`best_note` says what they are: print it under the table)."""
    columns = [("model", "model", ""), ("arch", "arch", ""), ("acc", "acc %", ".2f"),
               ("best_acc", "best acc % (optimistic)", ".2f"), ("best_epoch", "best epoch", ""),
               *([("top5", "top-5 %", ".2f")] if classes > 10 else []), ("ece", "ECE", ".4f"),
               ("params", "params", ""), ("macs", "MACs", ""), ("torch_b1_ms", "PyTorch ms (b1)", ".2f"),
               ("onnx_b1_ms", "ONNX ms (b1)", ".2f")]
    return _table(results, columns)


def noise_table(results: list[dict[str, Any]]) -> str:
    stds = sorted({s for r in results for s in r["noise_acc"]}, key=float)
    rows = [{**r, **{f"noise {s}": r["noise_acc"].get(s) for s in stds}} for r in results]
    return _table(rows, [("model", "model", ""), ("acc", "clean", ".2f"),
                         *((f"noise {s}", f"σ {s}", ".2f") for s in stds)])


def deployment_table(results: list[dict[str, Any]], batch: int) -> str:
    rows = [{**r, "onnx_kib": r["onnx_bytes"] / 1024 if r.get("onnx_bytes") else None} for r in results]
    return _table(rows, [("model", "model", ""), ("torch_b1_ms", "PyTorch ms, batch 1, 1 thread", ".3f"),
                         ("onnx_b1_ms", "ONNX ms, batch 1, 1 thread", ".3f"),
                         ("onnx_b64_ms", f"ONNX ms, batch {batch}, all cores", ".2f"),
                         ("onnx_kib", "ONNX KiB", ".1f"), ("onnx_max_abs_logit_diff", "max abs. logit diff.", ".2e"),
                         ("onnx_top1_agreement", "top-1 agreement %", ".2f")])


WHERE = ("Figures: data/plots/ (`dvc plots show` draws them into dvc_plots/index.html); "
         "ONNX students: data/export/<model>/model.onnx.")


def markdown_report(results: list[dict[str, Any]], params: Params, classes: int, warnings: list[str]) -> str:
    lines = [
        "# Evaluation report", "",
        f"Data set {dataset_title(params.data.name, params.data.root)} (loader `{params.data.name}`, "
        f"{count(classes, 'class')}, {count(results[0]['n'], 'test sample')}), seed "
        f"{params.train.seed}, checkpoint `{params.evaluate.checkpoint}` of every model (`last` = the final "
        "epoch; `best` = the epoch with the best test accuracy, which is optimistic).", "",
        comparison_table(results, classes), "", best_note(params.evaluate.checkpoint), "",
        *(f"**Warning.** {w}" + "\n" for w in warnings),
        "## Robustness to Gaussian noise on the raw input (accuracy %, σ on the [0, 1] scale)", "",
        noise_table([r for r in results if r["noise_acc"]]), "",
        "The topology teacher reads persistence images, not raw inputs: no noise figures for it.", "",
        "## Deployment: ONNX (onnxruntime) against PyTorch on this CPU", "",
        deployment_table(results, params.evaluate.latency_batch), "",
        "Latencies are medians of repeated calls and vary from run to run (`data/metrics/timing.json`).",
        "", WHERE, "",
    ]
    return "\n".join(lines)


def closing_summary(results: list[dict[str, Any]], params: Params, classes: int, warnings: list[str]) -> str:
    """What the stage prints last: the table, the warnings, the best student, where things are."""
    students = [r for r in results if r["model"] in layout.student_names(params.distill.methods)]
    best = max(students, key=lambda r: r["acc"])
    return "\n".join([comparison_table(results, classes), best_note(params.evaluate.checkpoint), "", *warnings,
                      f"Best student: {best['model']} at {best['acc']:.2f} % "
                      f"(scratch {next(r['acc'] for r in students if r['model'] == 'scratch'):.2f} %).",
                      WHERE])


def evaluate_all(params: Params) -> tuple[list[dict[str, Any]], str]:
    """The evaluate stage; returns every model's result and the closing summary."""
    device = select_device(params.train.device)
    inputs = load_inputs(prepared_dir=layout.PREPARED, topology_dir=layout.TOPOLOGY)
    results = [evaluate_one(name, inputs, params, device) for name in model_names(params)]
    write_json(layout.EVALUATE_METRICS, flat_metrics(results, QUALITY_KEYS, noise=True))
    write_json(layout.TIMING, flat_metrics(results, TIMING_KEYS, noise=False))
    warnings = warnings_in_words(results, params.distill.methods)
    write_json(layout.REPORT / "report.json", results)
    (layout.REPORT / "report.md").write_text(markdown_report(results, params, inputs.num_classes, warnings))
    write_figures(results, params, inputs.classes)
    return results, closing_summary(results, params, inputs.num_classes, warnings)
