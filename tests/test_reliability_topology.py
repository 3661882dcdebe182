"""The topology stage never loses finished work and never trusts broken work.

Killed at any moment (SIGKILL included), the next run computes only the shards that have no done
marker and publishes a data/topology tree byte-identical to an uninterrupted run's; half-written
shards, staging from another recipe and non-finite persistence images are never published.
"""
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import pipeline.topology_stage.blocks as blocks
import pipeline.topology_stage.publish as publish
from conftest import kill_group_when, subprocess_env, tiny_params
from pipeline.errors import TopologyError
from pipeline.params import section, validate
from pipeline.prepare import prepare
from pipeline.store import read_split, split_path, tree_digest
from pipeline.topology_stage import compute_topology

# 300 training samples in shards of 32: 10 shards, the last one partial (12 samples); 70 test
# samples: 3 shards, the last partial. 13 shards in all, so a kill lands between markers.
OVERRIDES = {"data.limit_train": 300, "data.limit_test": 70, "data.shard_size": 32,
             "topology.engine": "fast", "topology.n_jobs": 1}
N_SHARDS = 13
N_SAMPLES = 370


class Killed(BaseException):
    """An in-process stand-in for a kill at a chosen moment."""


def _params(**more) -> dict:
    return tiny_params(**{**OVERRIDES, **more})


def _cfg(**more) -> dict:
    return section(validate(_params(**more)), "topology")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """data/prepared of the shared test data, made once."""
    root = tmp_path_factory.mktemp("prepared")
    prepare(section(validate(_params()), "data"), root / "prepared")
    return root / "prepared"


@pytest.fixture(scope="module")
def reference(prepared, tmp_path_factory) -> str:
    """The tree digest of an uninterrupted run's data/topology."""
    root = tmp_path_factory.mktemp("reference")
    summary = compute_topology(prepared, root / "topology", _cfg(), staging=root / "staging",
                                   progress=False, print_fn=lambda *a: None)
    assert summary["samples_computed"] == N_SAMPLES
    assert not (root / "staging").exists()
    return tree_digest(root / "topology")


def _workspace(root: Path, prepared: Path, **more) -> Path:
    (root / "data").mkdir(parents=True)
    shutil.copytree(prepared, root / "data" / "prepared")
    (root / "params.yaml").write_text(yaml.safe_dump(_params(**more), sort_keys=False))
    return root


def _markers(staging: Path) -> list[Path]:
    return sorted(p for p in (staging / "done").glob("*-*") if p.suffix != ".tmp")


def _marked_samples(staging: Path) -> int:
    total = 0
    for marker in _markers(staging):
        start, stop = map(int, marker.read_text().split())
        total += stop - start
    return total


def _stage_in_background(workspace: Path) -> subprocess.Popen:
    """`python -m stages.topology`, each persistence-image block slowed to 0.2 s so that a kill
    reliably lands between the first and the last shard."""
    code = ("import runpy, time\n"
            "import pipeline.topology_stage.blocks as blocks\n"
            "compute = blocks.compute_block\n"
            "def slow(*args, **kwargs):\n"
            "    time.sleep(0.2)\n"
            "    return compute(*args, **kwargs)\n"
            "blocks.compute_block = slow\n"
            "runpy.run_module('stages.topology', run_name='__main__', alter_sys=True)\n")
    return subprocess.Popen([sys.executable, "-c", code], cwd=workspace, env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _keep_staging(monkeypatch) -> None:
    """Stop compute_topology once every shard is computed, before it publishes (an in-process
    stand-in for a kill at that moment): the staging folder is left full."""
    def stop(*args, **kwargs):
        raise Killed("stopped before publishing")

    monkeypatch.setattr(publish, "channel_mean_std", stop)


@pytest.mark.slow  # a stage in a subprocess, killed and rerun
def test_sigkill_then_rerun_computes_only_missing_shards(tmp_path, prepared, reference):
    ws = _workspace(tmp_path / "ws", prepared)
    staging = ws / "data" / ".staging" / "topology"
    process = _stage_in_background(ws)
    kill_group_when(process, lambda: len(_markers(staging)) >= 3, 60, "the stage wrote no done markers")
    assert process.returncode == -signal.SIGKILL
    done, done_samples = len(_markers(staging)), _marked_samples(staging)
    assert 3 <= done < N_SHARDS
    assert not (ws / "data" / "topology" / "stats.json").exists()

    rerun = subprocess.run([sys.executable, "-m", "stages.topology"], cwd=ws, env=subprocess_env(),
                           capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{done} shards already done" in rerun.stdout
    computed = int(re.search(r"topology: (\d+) samples ->", rerun.stdout).group(1))
    assert computed == N_SAMPLES - done_samples  # only the missing shards
    assert tree_digest(ws / "data" / "topology") == reference
    assert not staging.exists()


def test_half_written_shards_are_recomputed(tmp_path, prepared, reference, monkeypatch):
    staging, out = tmp_path / "staging", tmp_path / "topology"
    _keep_staging(monkeypatch)
    with pytest.raises(Killed):
        compute_topology(prepared, out, _cfg(), staging=staging, progress=False)
    assert len(_markers(staging)) == N_SHARDS
    monkeypatch.undo()

    # A killed run's leftovers: the last (partial) shard of each split half-written and unmarked,
    # a full shard of train deleted and unmarked, and a zarr temporary file of a killed write.
    for split, index in (("train", 9), ("test", 2), ("train", 4)):
        (staging / "done" / f"{split}-{index:06d}").unlink()
    for split, index in (("train", 9), ("test", 2)):
        shard = split_path(staging, split) / "pis" / f"c.{index}.0.0.0"
        shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    (split_path(staging, "train") / "pis" / "c.4.0.0.0").unlink()
    (split_path(staging, "train") / "pis" / "c.1.0.0.0123abcd.partial").write_bytes(b"junk")  # zarr's name for it
    (staging / "done" / "train-000004.tmp").write_text("0 32\n")  # a marker never renamed

    lines = []
    summary = compute_topology(prepared, out, _cfg(), staging=staging, progress=False,
                                   print_fn=lines.append)
    assert any("10 shards already done" in line for line in lines)
    assert summary["samples_computed"] == 12 + 6 + 32
    assert tree_digest(out) == reference
    assert not staging.exists()


def test_kill_while_publishing_recomputes_nothing(tmp_path, prepared, reference, monkeypatch):
    staging, out = tmp_path / "staging", tmp_path / "topology"
    publish_store = publish.publish_store

    def publish_train_only(staged, target, attrs):
        if attrs["split"] == "test":
            raise Killed("killed while publishing")
        publish_store(staged, target, attrs)

    monkeypatch.setattr(publish, "publish_store", publish_train_only)
    with pytest.raises(Killed):
        compute_topology(prepared, out, _cfg(), staging=staging, progress=False)
    assert (out / "train.zarr").is_dir() and not (out / "stats.json").exists()
    monkeypatch.undo()
    shutil.rmtree(out)  # what DVC does to the outputs of a stage that did not finish
    summary = compute_topology(prepared, out, _cfg(), staging=staging, progress=False,
                                   print_fn=lambda *a: None)
    assert summary["samples_computed"] == 0
    assert tree_digest(out) == reference


def test_staging_of_another_recipe_is_discarded(tmp_path, prepared, reference, monkeypatch):
    staging, out = tmp_path / "staging", tmp_path / "topology"
    _keep_staging(monkeypatch)
    other = _cfg()
    other["image"]["threshold"] = 0.05
    with pytest.raises(Killed):
        compute_topology(prepared, out, other, staging=staging, progress=False)
    assert len(_markers(staging)) == N_SHARDS
    monkeypatch.undo()

    lines = []
    summary = compute_topology(prepared, out, _cfg(), staging=staging, progress=False,
                                   print_fn=lines.append)
    assert any(line.startswith("discarding") for line in lines)
    assert summary["samples_computed"] == N_SAMPLES  # nothing of the other recipe reused
    assert tree_digest(out) == reference  # and byte-identical to an uninterrupted run


@pytest.mark.parametrize("engine_block", [512, 5])   # one engine call per shard, or several
def test_non_finite_persistence_image_is_an_error(tmp_path, prepared, monkeypatch, engine_block):
    monkeypatch.setattr(blocks, "ENGINE_BLOCK", engine_block)
    x, _ = read_split(split_path(prepared, "train"), ["x"])
    culprit = x["x"][70]
    compute = blocks.persistence_images

    def with_nan(images, **kwargs):
        pis = compute(images, **kwargs)
        for i, image in enumerate(images):
            if np.array_equal(image, culprit):
                pis[i, 0, 3, 4] = np.nan
        return pis

    monkeypatch.setattr(blocks, "persistence_images", with_nan)
    out = tmp_path / "topology"
    with pytest.raises(TopologyError, match=r"train\.zarr.*samples 64\.\.95.*NaN or inf.*\[70\]"):
        compute_topology(prepared, out, _cfg(), staging=tmp_path / "staging", progress=False)
    assert not (out / "stats.json").exists() and not (out / "train.zarr").exists()
    # The bad shard was never marked done, so a later run recomputes it.
    assert not (tmp_path / "staging" / "done" / "train-000002").exists()
