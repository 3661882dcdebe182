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
MODELS = DATA / "models"                # <model>/{last,best}.pt, summary.json
LIVE = DATA / "live"                    # DVCLive per-epoch logs, one folder per model
METRICS = DATA / "metrics"              # metrics files of the evaluate stage
REPORT = DATA / "report"                # report.md, report.json
PLOTS = DATA / "plots"                  # figures declared as DVC plots

# Outside every stage's outputs (DVC deletes outputs before a stage runs): resumable state.
RESUME = DATA / ".resume"               # training: <model>.pt after each epoch
STAGING = DATA / ".staging"             # topology: shards computed so far
ROOT_CACHE = DATA / ".cache" / "roots"  # remote data.root copies


def model_dir(name: str) -> Path:
    return MODELS / name


def live_dir(name: str) -> Path:
    return LIVE / name
