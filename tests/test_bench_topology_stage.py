"""`python -m pipeline.bench topology-stage` on a small imagefolder tree: both sides run and the
stage stores the TGD recipe's 50 x 50 PIs whatever params.yaml's default resolution is."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, subprocess_env


@pytest.mark.slow   # two stages and the engine in subprocesses
def test_topology_stage_benchmark_runs_both_sides(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 2)):
        for label in ("cat", "dog"):
            for i in range(n):
                folder = tmp_path / split / label
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    done = subprocess.run([sys.executable, "-m", "pipeline.bench", "topology-stage", "--root", str(tmp_path),
                           "--workers", "1", "--repeat", "1"], cwd=REPO, capture_output=True, text=True,
                          env=subprocess_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "topology stage / engine alone (medians):" in done.stdout
    assert "16 samples -> [6, 50, 50] float32" in done.stdout
