"""Stores at fsspec URLs: splits, the prepare stage and the topology stage write the same bytes to
`memory://` and `file://` as to a local folder; `data.root` may be a URL."""
import uuid
from pathlib import Path

import fsspec
import numpy as np
import pytest
from PIL import Image

from conftest import tiny_params
from pipeline import locations
from pipeline.inputs import load_inputs
from pipeline.params import section, validate
from pipeline.prepare import prepare
from pipeline.store import SPLITS, read_split, split_path, tree_digest, write_split
from pipeline.topology_stage import compute_topology


def _memory_url() -> str:
    return f"memory://tgd-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(autouse=True)
def _clean_memory():
    yield
    fs = fsspec.filesystem("memory")
    for path in fs.ls("/", detail=False):
        if "tgd-test-" in path:
            fs.rm(path, recursive=True)


@pytest.fixture(scope="module")
def params():
    return validate(tiny_params())


@pytest.fixture(scope="module")
def local(tmp_path_factory, params) -> Path:
    """The reference: prepare and topology into local folders."""
    root = tmp_path_factory.mktemp("local")
    prepare(section(params, "data"), root / "prepared")
    compute_topology(root / "prepared", root / "topology", section(params, "topology"),
                     staging=root / "staging", progress=False, print_fn=lambda *_: None)
    return root


def _digests(base) -> dict:
    return {s: tree_digest(split_path(base, s)) for s in SPLITS}


@pytest.mark.parametrize("scheme", ["memory", "file"])
def test_split_round_trip_at_a_url(tmp_path, scheme):
    arrays = {"x": np.arange(150 * 12, dtype=np.uint8).reshape(150, 2, 2, 3),
              "y": np.arange(150, dtype=np.int64) % 7}
    attrs = {"classes": ["a", "b"], "mean": [0.5]}
    write_split(tmp_path / "local.zarr", arrays, attrs, shard_size=64)
    url = f"{_memory_url()}/s.zarr" if scheme == "memory" else f"file://{tmp_path}/url/s.zarr"
    write_split(url, arrays, attrs, shard_size=64)
    assert tree_digest(url) == tree_digest(tmp_path / "local.zarr")
    assert not locations.exists(url + ".partial")
    back, back_attrs = read_split(url)
    for name, values in arrays.items():
        np.testing.assert_array_equal(back[name], values)
    assert back_attrs == attrs


def test_prepare_and_topology_into_memory(params, local):
    """memory:// lives in this process: the topology tasks run in it (n_jobs 1)."""
    base = _memory_url()
    prepare(section(params, "data"), f"{base}/prepared")
    assert _digests(f"{base}/prepared") == _digests(local / "prepared")
    summary = compute_topology(f"{base}/prepared", f"{base}/topology",
                               {**section(params, "topology"), "n_jobs": 1},
                               progress=False, print_fn=lambda *_: None)
    assert summary["samples_computed"] == 180
    assert tree_digest(f"{base}/topology") == tree_digest(local / "topology")
    assert not locations.exists(f"{base}/topology.staging")  # the default staging, removed
    inputs = load_inputs(prepared_dir=f"{base}/prepared", topology_dir=f"{base}/topology")
    assert tuple(inputs.splits["train"]["pi"].shape) == (120, 2, 50, 50)


def test_prepare_and_topology_into_file_urls_with_worker_processes(tmp_path, params, local):
    """file:// takes the fsspec route; two loky workers open the stores by URL themselves."""
    base = f"file://{tmp_path}"
    prepare(section(params, "data"), f"{base}/prepared")
    assert _digests(f"{base}/prepared") == _digests(local / "prepared")
    compute_topology(f"{base}/prepared", f"{base}/topology",
                     {**section(params, "topology"), "n_jobs": 2, "backend": "loky"},
                     progress=False, print_fn=lambda *_: None)
    assert tree_digest(f"{base}/topology") == tree_digest(local / "topology")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared", "topology"]


def _image_tree(root: Path) -> None:
    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("test", 3)):
        for label in ("cat", "dog"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")


@pytest.mark.parametrize("scheme", ["file", "memory"])
def test_data_root_as_a_url(tmp_path, monkeypatch, scheme):
    monkeypatch.chdir(tmp_path)  # a remote root is cached under data/.cache
    tree = tmp_path / "tree"
    _image_tree(tree)
    cfg = section(validate(tiny_params(**{"data.name": "imagefolder", "data.root": str(tree),
                                          "data.limit_train": None, "data.limit_test": None})), "data")
    prepare(cfg, tmp_path / "by-path")
    if scheme == "file":
        root = f"file://{tree}"
    else:
        root = f"{_memory_url()}/tree"
        fsspec.filesystem("memory").put(str(tree), root.split("://", 1)[1], recursive=True)
    summary = prepare({**cfg, "root": root}, tmp_path / "by-url")
    assert summary["splits"]["train"]["n"] == 12
    assert _digests(tmp_path / "by-url") == _digests(tmp_path / "by-path")
    assert (tmp_path / "data" / ".cache").exists() == (scheme == "memory")  # file:// is read in place


def test_topology_at_a_url_resumes_from_its_markers(tmp_path, params, local, monkeypatch):
    """Killed after the shards (before publishing): the rerun computes nothing again."""
    import pipeline.topology_stage.publish as publish

    base = f"file://{tmp_path}"
    prepare(section(params, "data"), f"{base}/prepared")
    cfg = {**section(params, "topology"), "n_jobs": 1}

    def killed(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(publish, "channel_mean_std", killed)
    with pytest.raises(KeyboardInterrupt):
        compute_topology(f"{base}/prepared", f"{base}/topology", cfg, progress=False,
                         print_fn=lambda *_: None)
    monkeypatch.undo()
    assert len(locations.listdir(f"{base}/topology.staging/done")) == 3  # 2 train + 1 test shards
    lines: list[str] = []
    summary = compute_topology(f"{base}/prepared", f"{base}/topology", cfg, progress=False,
                               print_fn=lines.append)
    assert summary["samples_computed"] == 0
    assert any(line.startswith("resuming from") and "3 shards already done" in line for line in lines)
    assert tree_digest(f"{base}/topology") == tree_digest(local / "topology")
