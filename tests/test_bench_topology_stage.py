"""`python -m pipeline.bench topology-stage` on a small imagefolder tree: both sides run and the
stage stores the TGD recipe's 50 x 50 PIs whatever params.yaml's default resolution is; the
page-cache probe and the reading of the stage's own timer."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, subprocess_env
from pipeline.bench import _stage_seconds, page_cache_probe


def test_page_cache_probe_times_both_writes_and_leaves_no_file(tmp_path):
    probe = page_cache_probe(tmp_path, nbytes=8 << 20, block_bytes=2 << 20)
    assert probe["gb"] == pytest.approx((8 << 20) / 1e9)
    assert probe["new_s_per_gb"] >= 0 and probe["cached_s_per_gb"] >= 0
    assert np.isfinite([probe["new_s_per_gb"], probe["cached_s_per_gb"]]).all()
    assert list(tmp_path.iterdir()) == []


def test_the_stage_timer_is_read_from_its_line_or_the_run_fails_naming_it():
    line = "topology: 60000 samples -> [6, 50, 50] float32 persistence images in 9.4 s (engine fast)"
    assert _stage_seconds(line) == 9.4
    with pytest.raises(RuntimeError, match="printed no timing"):
        _stage_seconds("topology: nothing to do")


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
    assert "inside the stage (its own timer): the parallel part" in done.stdout
    assert "page cache on this machine (0.1 GB probe" in done.stdout   # 64 MiB: the output is smaller
    assert "16 samples -> [6, 50, 50] float32" in done.stdout
