"""The topology stage on Dask (joblib's Dask backend) writes exactly what the local run writes."""
from pathlib import Path

import pytest

from conftest import tiny_params
from pipeline.params import section, validate
from pipeline.prepare import prepare
from pipeline.store import SPLITS, split_path, tree_digest
from pipeline.topology_stage import compute_topology

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    # Shards of 32 samples: 4 train and 2 test shards, i.e. several tasks per worker.
    params = validate(tiny_params(**{"data.shard_size": 32}))
    root = tmp_path_factory.mktemp("prepared")
    prepare(section(params, "data"), root / "prepared")
    return root / "prepared"


def _cfg(**changes) -> dict:
    return {**section(validate(tiny_params()), "topology"), "n_jobs": 2, **changes}


def _run(prepared, out: Path, cfg: dict) -> dict:
    summary = compute_topology(prepared, out, cfg, staging=out.with_name(out.name + "-staging"),
                               progress=False, print_fn=lambda *_: None)
    assert summary["samples_computed"] == 180
    return {s: tree_digest(split_path(out, s)) for s in SPLITS} | {"all": tree_digest(out)}


@pytest.fixture(scope="module")
def loky(prepared, tmp_path_factory) -> dict:
    return _run(prepared, tmp_path_factory.mktemp("loky") / "topology", _cfg(backend="loky"))


@pytest.mark.slow  # a Dask cluster
def test_local_cluster_started_by_the_stage_equals_loky(prepared, loky, tmp_path):
    """`backend: dask`, `scheduler: null`: the stage starts a LocalCluster of n_jobs processes."""
    assert _run(prepared, tmp_path / "topology", _cfg(backend="dask", scheduler=None)) == loky


@pytest.mark.slow  # a Dask cluster
def test_cluster_by_address_with_relative_paths(prepared, loky, tmp_path, monkeypatch):
    """A cluster of its own (reached by its address) whose workers run in another folder: the
    stage hands them absolute paths, so relative stage paths still work."""
    from distributed import LocalCluster

    workspace = tmp_path / "workspace"
    (workspace / "data").mkdir(parents=True)
    (workspace / "data" / "prepared").symlink_to(prepared)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        monkeypatch.chdir(workspace)  # after the workers started: their folder is not this one
        digests = _run(Path("data/prepared"), Path("data/topology"),
                       _cfg(backend="dask", scheduler=cluster.scheduler_address))
    assert digests == loky
    assert sorted(p.name for p in (workspace / "data").iterdir()) == ["prepared", "topology"]
