"""The stacked recipe `topology.image.filtrations: [sequence, cubical]` through the stages: the
topology stage (figure included), resume and Dask on the same code path, teacher 2 on 4-channel
PIs, and (slow) `dvc exp run -S` over the whole DAG."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

import pipeline.topology_stage.blocks as blocks
from pipeline.checkpoint import load_model
from pipeline.params import load_params, section, validate
from pipeline.prepare import prepare
from pipeline.store import SPLITS, read_split, split_path, tree_digest
from pipeline.topology_stage import compute_topology
from tests.conftest import REPO, tiny_params

STACKED = ["sequence", "cubical"]
N_SAMPLES = 180   # tiny_params: 120 train + 60 test digits


def stacked_params(**overrides) -> dict:
    raw = tiny_params(**overrides)
    raw["topology"]["image"]["filtrations"] = STACKED
    return raw


def _cfg(**changes) -> dict:
    return {**section(validate(stacked_params(**{"data.shard_size": 32})), "topology"), **changes}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("prepared")
    prepare(section(validate(stacked_params(**{"data.shard_size": 32})), "data"), root / "prepared")
    return root / "prepared"


def _run(prepared: Path, out: Path, cfg: dict, print_fn=lambda *a: None) -> dict:
    return compute_topology(prepared, out, cfg, staging=out.with_name(out.name + "-staging"),
                                progress=False, print_fn=print_fn)


@pytest.fixture(scope="module")
def stacked(prepared, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("stacked") / "topology"
    assert _run(prepared, out, _cfg())["samples_computed"] == N_SAMPLES
    return out


def test_stacked_store_is_both_recipes_side_by_side(prepared, stacked, tmp_path):
    pis, attrs = read_split(split_path(stacked, "train"))
    assert pis["pis"].shape == (120, 4, 50, 50) and len(attrs["mean"]) == 4
    assert attrs["recipe"]["filtrations"] == STACKED
    for name, channels in (("sequence", slice(0, 2)), ("cubical", slice(2, 4))):
        cfg = _cfg()
        cfg["image"] = dict(cfg["image"], filtrations=[name])
        _run(prepared, tmp_path / name, cfg)
        alone, _ = read_split(split_path(tmp_path / name, "train"))
        np.testing.assert_array_equal(pis["pis"][:, channels], alone["pis"])


class Killed(BaseException):
    """An in-process stand-in for a kill."""


def test_stacked_recipe_resumes_after_a_kill(prepared, stacked, tmp_path, monkeypatch):
    compute, calls = blocks.compute_block, []

    def killed_in_the_third_shard(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:   # call 1 is the stage's probe, then one call per 32-sample shard
            raise Killed()
        return compute(*args, **kwargs)

    monkeypatch.setattr(blocks, "compute_block", killed_in_the_third_shard)
    cfg = _cfg(n_jobs=1)
    with pytest.raises(Killed):
        _run(prepared, tmp_path / "topology", cfg)
    monkeypatch.undo()
    lines = []
    summary = _run(prepared, tmp_path / "topology", cfg, print_fn=lines.append)
    assert any("2 shards already done" in line for line in lines)
    assert summary["samples_computed"] == N_SAMPLES - 2 * 32
    assert tree_digest(tmp_path / "topology") == tree_digest(stacked)


def test_stacked_recipe_on_dask_equals_loky(prepared, stacked, tmp_path):
    pytest.importorskip("distributed")
    _run(prepared, tmp_path / "topology", _cfg(backend="dask", scheduler=None, n_jobs=2))
    assert [tree_digest(split_path(tmp_path / "topology", s)) for s in SPLITS] == \
           [tree_digest(split_path(stacked, s)) for s in SPLITS]


def test_stage_draws_the_figure_and_teacher_2_trains_on_4_channels(workspace):
    (workspace / "params.yaml").write_text(yaml.safe_dump(stacked_params(), sort_keys=False))
    from pipeline.layout import PREPARED
    from pipeline.runs import train_teacher
    from stages import topology, topology_figure

    params = load_params()
    prepare(section(params, "data"), PREPARED)
    topology.main()
    topology_figure.main()
    figure = workspace / topology_figure.FIGURE
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 20_000
    summary = train_teacher("topology", params)
    assert 0.0 <= summary["teacher_topology_acc"] <= 100.0
    _, meta = load_model(workspace / "data/models/teacher_topology/last.pt")
    assert meta["in_channels"] == 4


def test_figure_of_sensor_windows(tmp_path):
    from pipeline.topology_figure import draw, pick_samples

    assert pick_samples(np.array([2, 0, 2, 1, 0, 3]), 3).tolist() == [1, 3, 0]   # classes 0, 1, 2
    recipe = validate(tiny_params()).topology.signal.model_dump()
    rng = np.random.default_rng(0)
    path = draw(rng.normal(size=(2, 100, 3)), rng.uniform(size=(2, 3, 64, 64)),
                [f"channel {c}, sequence, H0" for c in range(3)], ["walking (#0)", "running (#7)"],
                recipe, "signal", tmp_path / "plots" / "pis.png")
    assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 10_000


def test_dvc_declares_the_figure_and_no_output_inside_another():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert {"data/plots/persistence_images.png": {"cache": False}} in stages["topology_figure"]["plots"]
    # redrawing must not recompute the PIs: the figure's code is no dependency of the topology stage
    assert not any(d.startswith("pipeline/topology_figure") or d.startswith("stages/topology_figure")
                   for d in stages["topology"]["deps"])
    assert "plots" not in stages["topology"]
    outs = []
    for stage in stages.values():
        body = stage.get("do", stage)
        for kind in ("outs", "plots", "metrics"):
            outs += [next(iter(o)) if isinstance(o, dict) else o for o in body.get(kind, [])]
    fixed = [o for o in outs if "$" not in o]
    for a in fixed:
        for b in fixed:
            assert a == b or not b.startswith(a.rstrip("/") + "/"), f"{b} lies inside {a}"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("dvc") is None, reason="dvc is not installed")
def test_dvc_exp_run_with_the_stacked_recipe(tmp_path):
    from tests.test_dvc import kd_tgd_params, make_project, sh

    make_project(tmp_path, kd_tgd_params())
    out = sh(tmp_path, "dvc", "exp", "run", "-n", "stacked", "-S", "topology.image.filtrations=[sequence,cubical]")
    for stage in ("prepare", "topology", "train_teacher@topology", "distill@tgd", "evaluate"):
        assert f"Running stage '{stage}'" in out, stage
    pis, attrs = read_split(split_path(tmp_path / "data" / "topology", "test"))
    assert pis["pis"].shape[1] == 4 and attrs["recipe"]["filtrations"] == STACKED
    assert (tmp_path / "data/plots/persistence_images.png").stat().st_size > 20_000
    metrics = json.loads((tmp_path / "data/metrics/evaluate.json").read_text())
    assert {"teacher_topology_acc", "tgd_acc", "kd_acc"} <= set(metrics)
