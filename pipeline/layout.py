"""The data/ layout: where every stage reads and writes, in one place (dvc.yaml mirrors it).

Paths are relative to the repository root, where DVC runs the stages. Importing this module
costs nothing (no torch, no zarr), so the prepare and topology stages can learn their paths
without loading the training stack.
"""
from __future__ import annotations

from pathlib import Path

DATA = Path("data")

SOURCE = DATA / "source.json"           # source: fingerprint of the files under data.root
PREPARED = DATA / "prepared"            # prepare: {train,test}.zarr of raw inputs
TOPOLOGY = DATA / "topology"            # topology: {train,test}.zarr of persistence images
TEACHERS = DATA / "teachers"            # teachers: train.zarr of the frozen teachers' outputs
MODELS = DATA / "models"                # <model>/{last,best}.pt, summary.json
LIVE = DATA / "live"                    # DVCLive per-epoch logs, one folder per model
EXPORT = DATA / "export"                # export: <model>/model.onnx, check.json
METRICS = DATA / "metrics"              # metrics files of the evaluate stage
EVALUATE_METRICS = METRICS / "evaluate.json"  # accuracy, calibration, noise, size: declared DVC metrics
TIMING = METRICS / "timing.json"        # latencies: kept in Git, not a declared metric (noisy)
EVALUATE_PLOTS = DATA / "plots" / "evaluate"  # the evaluate stage's figures and tables (a folder of its own)
REPORT = DATA / "report"                # report.md, report.json
PLOTS = DATA / "plots"                  # figures and the tables dvc.yaml's top-level plots draw

# Outside every stage's outputs (DVC deletes outputs before a stage runs): resumable state.
RESUME = DATA / ".resume"               # training: <model>.pt after each epoch
STAGING = DATA / ".staging"             # topology: shards computed so far
TEACHERS_STAGING = STAGING / "teachers" # teachers: epochs computed so far
ROOT_CACHE = DATA / ".cache" / "roots"  # remote data.root copies


TEACHER_MODELS = ("teacher_image", "teacher_topology")  # teacher 1 (raw inputs), teacher 2 (PIs)


def student_names(methods: list[str]) -> list[str]:
    """The students' model names: the scratch baseline, then one per distillation method."""
    return ["scratch", *methods]


def model_dir(name: str) -> Path:
    return MODELS / name


def live_dir(name: str) -> Path:
    return LIVE / name


def export_dir(name: str) -> Path:
    return EXPORT / name
