"""Recipes the topology stage refuses: one whose persistence images carry nothing (all zeros, or
all in one pixel, for most training samples) fails before publishing, naming the keys and the
share; one whose stores would not fit on the disk or in memory fails before any work."""
import re
from pathlib import Path

import pytest

from conftest import tiny_params
from pipeline.errors import TopologyError
from pipeline.params import section, validate
from pipeline.prepare import prepare
from pipeline.topology_stage import compute_topology
from pipeline.topology_stage.checks import DEGENERATE_SHARE, check_yield

OVERRIDES = {"data.limit_train": 120, "data.limit_test": 40, "data.shard_size": 64,
             "topology.engine": "fast", "topology.n_jobs": 1, "topology.image.resolution": 8}


def _cfg(**more) -> dict:
    return section(validate(tiny_params(**{**OVERRIDES, **more})), "topology")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("prepared")
    prepare(section(validate(tiny_params(**OVERRIDES)), "data"), root / "prepared")
    return root / "prepared"


def _run(prepared: Path, out: Path, cfg: dict) -> dict:
    return compute_topology(prepared, out / "topology", cfg, staging=out / "staging", progress=False,
                            print_fn=lambda *a: None)


@pytest.mark.parametrize("key, value", [("topology.image.threshold", 0.5), ("topology.image.min_max", 1e3)])
def test_a_recipe_of_all_zero_images_fails_before_publishing(prepared, tmp_path, key, value):
    with pytest.raises(TopologyError) as error:
        _run(prepared, tmp_path, _cfg(**{key: value}))
    threshold, min_max = (0.5, 1e-08) if key.endswith("threshold") else (0.02, 1000)
    assert str(error.value) == (
        f"topology.image (threshold={threshold:g}, min_max={min_max:g}): 100.0 % of training samples have an "
        "all-zero persistence image in channel 0 (gray, row sequence, H0), and in 1 other channel; "
        "lower topology.image.threshold or topology.image.min_max")
    assert not (tmp_path / "topology" / "stats.json").exists()
    assert not (tmp_path / "topology" / "train.zarr").exists()


def test_a_window_that_puts_every_point_in_one_pixel_fails(prepared, tmp_path):
    cfg = _cfg(**{"topology.image.filtrations": ["cubical"], "topology.image.cubical_range": [0.0, 1e308]})
    with pytest.raises(TopologyError, match=re.escape(
            "topology.image (cubical_range=[0, 1e+308], sigma=0.01, resolution=8): ")) as error:
        _run(prepared, tmp_path, cfg)
    assert "of training samples have more than 99 % of their persistence image's mass in one pixel in " \
           "channel 0 (gray, cubical, H0)" in str(error.value)
    assert str(error.value).endswith("narrow topology.image.cubical_range to the range the diagrams span, "
                                     "or raise topology.image.sigma")
    assert not (tmp_path / "topology" / "stats.json").exists()


def test_a_normal_recipe_passes(prepared, tmp_path):
    assert _run(prepared, tmp_path, _cfg())["shape"] == [2, 8, 8]
    assert (tmp_path / "topology" / "stats.json").is_file()


def test_the_bar_is_a_share_of_all_training_shards():
    labels = ["c0", "c1"]
    n = 100
    over = round(DEGENERATE_SHARE * n) + 1
    parts = [{"samples": 60, "empty": [over - 40, 0], "peaked": [0, 0]},
             {"samples": 40, "empty": [40, 0], "peaked": [0, 0]}]
    with pytest.raises(TopologyError, match=rf"{over:.1f} % of training samples have an all-zero "
                                            r"persistence image in channel 0 \(c0\); lower topology.signal.threshold"):
        check_yield(parts, "signal", {"threshold": 0.01}, labels)
    parts[0]["empty"][0] -= 1  # exactly at the bar: accepted
    check_yield(parts, "signal", {"threshold": 0.01}, labels)


def test_stores_that_would_not_fit_on_the_disk_fail_before_any_work(prepared, tmp_path, monkeypatch):
    import pipeline.topology_stage.checks as checks

    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(checks.shutil, "disk_usage", lambda path: shutil_usage(free=10**9))
    cfg = _cfg(**{"topology.image.resolution": 1000})
    with pytest.raises(TopologyError) as error:
        compute_topology(prepared, "data/topology", cfg, staging="data/.staging/topology", progress=False)
    assert str(error.value) == ("topology.image.resolution=1000: the persistence images would need 1.3 GB "
                                "(160 x 2 x 1000 x 1000 x 4 bytes); data/ has 1.0 GB free")
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == []  # nothing was created


def test_buffers_that_would_not_fit_in_memory_fail_before_any_work(prepared, tmp_path, monkeypatch):
    import pipeline.topology_stage.checks as checks

    monkeypatch.setattr(checks, "_available_memory", lambda: 2 * 10**9)
    cfg = _cfg(**{"topology.image.resolution": 1000, "topology.dtype": "float16"})
    with pytest.raises(TopologyError) as error:
        _run(prepared, tmp_path, cfg)
    assert str(error.value) == (
        "topology.image.resolution=1000: 1 worker(s) would need 3.6 GB of memory (each: two shards of 64 x 2 x 1000 "
        "x 1000 float32 values, their float16 copies and the engine's float64 blocks); 2.0 GB is available; "
        "lower topology.image.resolution, "
        "topology.n_jobs or data.shard_size")
    assert not (tmp_path / "staging").exists()


def test_an_absurd_resolution_fails_in_the_schema():
    from pipeline.errors import ParamsError

    with pytest.raises(ParamsError, match=r"topology.image.resolution=3000: must be at most 1024"):
        validate(tiny_params(**{"topology.image.resolution": 3000}))


def shutil_usage(free: int):
    import shutil

    return shutil._ntuple_diskusage(10**12, 10**12 - free, free)
