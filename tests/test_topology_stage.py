"""The data stages at engine speed: statistics from the tasks, stored dtype and codec, prepare
decoding only what it keeps, and no torch in the source, prepare, topology and topology_figure stages."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from PIL import Image

import pipeline.data.imagefiles as imagefiles
from conftest import subprocess_env
from pipeline.data import limit_split, load_dataset
from pipeline.params import section, validate
from pipeline.prepare import channel_stats, prepare
from pipeline.store import read_split, split_path
from pipeline.topology import persistence_images
from pipeline.topology_stage import compute_topology
from conftest import tiny_params


@pytest.fixture(scope="module")
def params():
    return validate(tiny_params(**{"data.shard_size": 32}))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, params) -> Path:
    root = tmp_path_factory.mktemp("prepared") / "prepared"
    prepare(section(params, "data"), root)
    return root


def _topology(prepared: Path, out: Path, params, **changes) -> dict:
    cfg = {**section(params, "topology"), **changes}
    return compute_topology(prepared, out, cfg, staging=out.with_name(out.name + "-staging"),
                            progress=False, print_fn=lambda *_: None)


@pytest.fixture(scope="module")
def float32(prepared, params, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("f32") / "topology"
    _topology(prepared, out, params)
    return out


def test_float32_pis_are_the_engines_own_and_stored_uncompressed(prepared, float32, params):
    recipe = section(params, "topology")["image"]
    for split in ("train", "test"):
        x = read_split(split_path(prepared, split), ["x"])[0]["x"]
        stored = zarr.open_group(str(split_path(float32, split)), mode="r")["pis"]
        assert stored.dtype == np.float32
        assert np.array_equal(stored[...], persistence_images(x, engine="fast", **recipe))  # bit for bit
        codecs = stored.metadata.to_dict()["codecs"][0]["configuration"]
        assert [c["name"] for c in codecs["codecs"]] == ["bytes"]  # no compressor: measured cheapest


def test_engine_calls_of_a_few_samples_fill_the_reused_buffer_exactly(prepared, params, monkeypatch):
    import pipeline.topology_stage.blocks as job

    recipe = section(params, "topology")["image"]
    x = read_split(split_path(prepared, "train"), ["x"])[0]["x"][:40]
    whole = job.compute_block(x, "image", "fast", recipe)   # one engine call: ENGINE_BLOCK >= 40
    monkeypatch.setattr(job, "ENGINE_BLOCK", 7)
    buffer = np.full((64, *whole.shape[1:]), np.nan, np.float32)
    blocks = job.compute_block(x, "image", "fast", recipe, out=buffer[:40])
    assert blocks.base is buffer or blocks is buffer or np.shares_memory(blocks, buffer)
    assert np.array_equal(buffer[:40], whole) and np.isnan(buffer[40:]).all()   # no row beyond its own
    assert np.array_equal(job.compute_block(x, "image", "fast", recipe), whole)   # allocated when no out


def test_statistics_from_the_tasks_equal_a_pass_over_the_store(float32):
    pis = read_split(split_path(float32, "train"), ["pis"])[0]["pis"].astype(np.float64)
    attrs = zarr.open_group(str(split_path(float32, "train")), mode="r").attrs
    np.testing.assert_allclose(attrs["mean"], pis.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(attrs["std"], pis.std(axis=(0, 2, 3)), rtol=1e-9)


def test_statistics_do_not_depend_on_worker_order(prepared, float32, params, tmp_path):
    """Two workers finish shards in any order; the sums are added in shard order."""
    out = tmp_path / "two"
    _topology(prepared, out, params, n_jobs=2)
    for split in ("train", "test"):
        one = zarr.open_group(str(split_path(float32, split)), mode="r")
        two = zarr.open_group(str(split_path(out, split)), mode="r")
        assert one.attrs["mean"] == two.attrs["mean"] and one.attrs["std"] == two.attrs["std"]
        assert np.array_equal(one["pis"][...], two["pis"][...])


def test_float16_stores_half_the_bytes_and_training_reads_them(prepared, float32, params, tmp_path):
    out = tmp_path / "topology"
    summary = _topology(prepared, out, params, dtype="float16")
    assert summary["dtype"] == "float16"
    half = zarr.open_group(str(split_path(out, "train")), mode="r")["pis"]
    full = zarr.open_group(str(split_path(float32, "train")), mode="r")["pis"]
    assert half.dtype == np.float16
    assert np.array_equal(half[...], full[...].astype(np.float16))
    size = {d: sum(f.stat().st_size for f in Path(d).glob("*.zarr/pis/c.*") if f.is_file()) for d in (out, float32)}
    assert size[out] * 2 == pytest.approx(size[float32], rel=0.01)
    stats = zarr.open_group(str(split_path(out, "train")), mode="r").attrs
    reference = zarr.open_group(str(split_path(float32, "train")), mode="r").attrs
    assert stats["mean"] == reference["mean"] and stats["std"] == reference["std"]  # of the float32 values
    np.testing.assert_allclose(stats["mean"], half[...].astype(np.float64).mean(axis=(0, 2, 3)), rtol=1e-3)

    from pipeline.inputs import load_inputs

    inputs = load_inputs(prepared, out)
    batch = inputs.splits["train"]["pi"][:4]
    assert str(batch.dtype) == "torch.float16"
    assert str(inputs.model_input("pi", batch).dtype) == "torch.float32"


def test_prepare_decodes_only_the_images_it_keeps(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    for split, count in (("train", 10), ("test", 5)):
        for label in ("a", "b", "c"):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    cfg = {"name": "imagefolder", "root": str(tmp_path), "split_seed": 3}
    everything = load_dataset(cfg)
    decoded = []
    decode = imagefiles._decode
    monkeypatch.setattr(imagefiles, "_decode", lambda path, size: decoded.append(path) or decode(path, size))
    limited = load_dataset({**cfg, "limit_train": 7, "limit_test": 4})
    assert len(decoded) == 7 + 4
    for split, n in (("train", 7), ("test", 4)):  # the subset limiting after decoding keeps
        expected = limit_split(everything.splits[split], n, seed=3)
        assert np.array_equal(limited.splits[split].x, expected.x)
        assert np.array_equal(limited.splits[split].y, expected.y)


def test_image_statistics_are_exact():
    x = np.random.default_rng(0).integers(0, 256, (500, 7, 5, 3), dtype=np.uint8)
    mean, std = channel_stats(x, "image")
    values = x.astype(np.float64) / 255
    np.testing.assert_allclose(mean, values.mean(axis=(0, 1, 2)), rtol=1e-13)
    np.testing.assert_allclose(std, values.std(axis=(0, 1, 2)), rtol=1e-12)


@pytest.mark.slow
def test_data_stages_never_import_torch(workspace):
    code = ("import runpy, sys\n"
            "for stage in ('source', 'prepare', 'topology', 'topology_figure'):\n"
            "    runpy.run_module(f'stages.{stage}', run_name='__main__')\n"
            "print('torch imported:', 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=workspace, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "topology: 180 samples" in done.stdout
    assert done.stdout.strip().endswith("torch imported: False")


def test_topology_parent_never_loads_the_engine():
    """The stage's parent process plans, hashes, publishes and draws: numba and scipy load in the
    workers only, and the registry still resolves on first use."""
    code = ("import sys, stages.topology, stages.topology_figure\n"
            "print(sorted(m for m in ('numba', 'scipy', 'pipeline.topology.engines') if m in sys.modules))\n"
            "import pipeline.topology as t\n"
            "print(t.get_engine('fast').name, sorted(t.ENGINES), 'pipeline.topology.engines' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "fast ['fast', 'ripser'] True"]
