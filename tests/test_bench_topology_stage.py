"""`python -m benchmarks topology-stage` on a small CIFAR-format JPEG tree: both sides run and the
stage stores the TGD recipe's 50 x 50 PIs whatever params.yaml's default resolution is; the
page-cache probe and the reading of the stage's own timer."""
import re
import subprocess
import sys

import numpy as np
import pytest

from benchmarks.topology_stage import page_cache_probe, stage_seconds
from conftest import REPO, subprocess_env
from tests.cifar_fixtures import write_cifar_tree


def test_page_cache_probe_times_both_writes_and_leaves_no_file(tmp_path):
    probe = page_cache_probe(tmp_path, nbytes=8 << 20, block_bytes=2 << 20)
    assert probe["gb"] == pytest.approx((8 << 20) / 1e9)
    assert probe["new_s_per_gb"] >= 0 and probe["cached_s_per_gb"] >= 0
    assert np.isfinite([probe["new_s_per_gb"], probe["cached_s_per_gb"]]).all()
    assert list(tmp_path.iterdir()) == []


def test_the_stage_timer_is_read_from_its_line_or_the_run_fails_naming_it():
    line = "topology: 60000 samples -> [6, 50, 50] float32 persistence images in 9.4 s (engine fast)"
    assert stage_seconds(line) == 9.4
    with pytest.raises(RuntimeError, match="printed no timing"):
        stage_seconds("topology: nothing to do")


@pytest.mark.slow   # two stages and the engine in subprocesses
def test_topology_stage_benchmark_runs_both_sides(tmp_path):
    write_cifar_tree(tmp_path, train_per_class=6, test_per_class=2)
    done = subprocess.run([sys.executable, "-m", "benchmarks", "topology-stage", "--root", str(tmp_path),
                           "--workers", "1", "--repeat", "1"], cwd=REPO, capture_output=True, text=True,
                          env=subprocess_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    ratio = re.search(r"topology stage / engine alone \(medians\): ([0-9.]+)x wall, ([0-9.]+)x CPU", done.stdout)
    assert ratio and float(ratio.group(1)) > 0 and float(ratio.group(2)) > 0, done.stdout
    assert "inside the stage (its own timer): the parallel part" in done.stdout
    assert "page cache on this machine (0.1 GB probe" in done.stdout   # 64 MiB: the output is smaller
    assert "16 samples -> [6, 50, 50] float32" in done.stdout
