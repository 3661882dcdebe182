"""The teacher cache: a distill run that reads the stored teacher outputs trains the same student
as one that runs the teachers; the cache falls back (and says so) where it cannot be exact."""
import json
import os
from pathlib import Path

import pytest
import torch
import yaml

from conftest import tiny_params
from pipeline import teacher_cache
from pipeline.checkpoint import read_checkpoint
from pipeline.distill.base import Method
from pipeline.layout import PREPARED, TOPOLOGY
from pipeline.params import load_params, section, validate
from pipeline.prepare import prepare
from pipeline.distill_runs import distill
from pipeline.runs import train_student, train_teacher
from pipeline.store import tree_digest
from pipeline.teacher_cache import (STORE, TeacherCacheError, cache_needs, cache_teachers, epoch_order,
                                    feed_for, pack, triangle_size, unpack)
from pipeline.topology_stage import compute_topology

CACHE = Path("data/teachers")


@pytest.fixture(autouse=True)
def single_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dag(tmp_path_factory) -> Path:
    """prepare, topology, both teachers, the scratch student and the teacher cache, once."""
    root = tmp_path_factory.mktemp("dag")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
        params = load_params()
        prepare(section(params, "data"), PREPARED)
        compute_topology(PREPARED, TOPOLOGY, section(params, "topology"))
        for kind in ("image", "topology"):
            train_teacher(kind, params)
        train_student(params)
        summary = cache_teachers(params)
    finally:
        os.chdir(cwd)
    assert summary["cached"] and summary["map_epochs"] == 2
    assert summary["needs"] == {"image": ["corr", "gram"], "topology": ["corr", "gram"]}
    return root


def test_pack_unpack_round_trip():
    for b in (1, 5):
        f = torch.randn(b, 7)
        maps = [f @ f.t(), torch.eye(b) * 3.0]
        packed = pack(maps)
        assert packed.shape == (2, triangle_size(b))
        padded = torch.cat([packed, torch.full((2, 4), float("nan"))], dim=1)  # a last, smaller batch
        for got, want in zip(unpack(padded, b), maps):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_cache_needs_follow_the_methods():
    assert cache_needs(["kd"]) == {"image": ()}
    assert cache_needs(["kd", "sp"]) == {"image": ("gram",)}
    assert cache_needs(["tgd"]) == {"image": ("gram",), "topology": ("gram",)}
    assert cache_needs(["kd", "sp", "tgd", "tpkd"]) == {"image": ("corr", "gram"), "topology": ("corr", "gram")}
    assert cache_needs(["aver", "dkd"]) == {"image": (), "topology": ()}
    assert cache_needs(["tgd_t1"]) == {"image": ("gram",)}


@pytest.mark.parametrize("method", ["kd", "sp", "tgd", "tpkd", "tgd_t1", "aver", "dkd"])
def test_cached_run_trains_the_same_student(dag, monkeypatch, capsys, method):
    monkeypatch.chdir(dag)
    real_teacher = Method.teacher

    def must_not_run(self, key, batch):
        raise AssertionError(f"teacher {key} ran although its outputs are cached")

    monkeypatch.setattr(Method, "teacher", must_not_run)
    distill(method, validate(tiny_params()))
    assert f"{method}: teacher outputs from {CACHE}" in capsys.readouterr().out
    cached = read_checkpoint(f"data/models/{method}/last.pt")["state_dict"]
    cached_live = json.loads(Path(f"data/live/{method}/metrics.json").read_text())

    monkeypatch.setattr(Method, "teacher", real_teacher)
    distill(method, validate(tiny_params(**{"distill.teacher_cache": False})))
    assert f"{method}: running the teachers (distill.teacher_cache is false)" in capsys.readouterr().out
    computed = read_checkpoint(f"data/models/{method}/last.pt")["state_dict"]
    assert cached.keys() == computed.keys()
    for key in cached:
        torch.testing.assert_close(cached[key], computed[key], rtol=1e-5, atol=1e-6, msg=key)
    live = json.loads(Path(f"data/live/{method}/metrics.json").read_text())
    assert live[f"{method}_loss_ce"] == pytest.approx(cached_live[f"{method}_loss_ce"], rel=1e-5)
    if method in ("tgd", "tpkd"):  # the map-share diagnostic, the same from the cache
        for group in (1, 2, 3):
            key = f"{method}_share_g{group}"
            assert 0.0 < live[key] and live[key] == pytest.approx(cached_live[key], rel=1e-5)


def test_feed_refuses_a_batch_it_was_not_built_for(dag, monkeypatch, capsys):
    monkeypatch.chdir(dag)
    params = validate(tiny_params())
    feed = feed_for("tgd", params, torch.device("cpu"))
    order = epoch_order(params.train.seed, 1, 120)
    batch = feed(1, 1, order[32:64])  # the second batch of the second epoch
    assert batch.logits["image"].shape == (32, 10) and len(batch.maps["topology"]["gram"]) == 3
    with pytest.raises(TeacherCacheError, match="batch 2 of epoch 2"):
        feed(1, 1, order[:32])


@pytest.mark.parametrize("override, why", [
    ({"train.augment": True}, "no exact cache: train.augment is true"),
    ({"train.nproc": 2}, "no exact cache: DDP"),
    ({"train.seed": 1}, "belongs to other teachers, inputs, seed, epochs or batch size"),
    ({"train.epochs": 3}, "belongs to other teachers, inputs, seed, epochs or batch size"),
])
def test_falls_back_to_the_teachers_where_not_exact(dag, monkeypatch, capsys, override, why):
    monkeypatch.chdir(dag)
    params = validate(tiny_params(**override))
    assert feed_for("tgd", params, torch.device("cpu")) is None
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("tgd: running the teachers (") and why in out


def test_distill_weights_read_the_same_cache(dag, monkeypatch, capsys):
    monkeypatch.chdir(dag)
    params = validate(tiny_params(**{"distill.tpkd.alpha": 0.2, "distill.tpkd.beta": 5.0,
                                     "distill.tpkd.lambda": 0.5, "distill.tpkd.temperature": 2.0,
                                     "distill.tpkd.kl_reduction": "mean"}))
    assert feed_for("tpkd", params, torch.device("cpu")) is not None


def test_augment_writes_no_cache(tmp_path, dag, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "prepared").symlink_to(dag / "data" / "prepared")
    monkeypatch.chdir(tmp_path)
    summary = cache_teachers(validate(tiny_params(**{"train.augment": True})))
    assert summary == {"cached": False, "reason": "train.augment is true: every epoch draws new crops and flips"}
    assert not (CACHE / STORE).exists()


def test_killed_stage_resumes_to_the_same_store(dag, tmp_path, monkeypatch, capsys):
    """A stage killed after its first epoch computes only the second on the next run, and
    writes the same bytes as the uninterrupted one."""
    (tmp_path / "data" / "models").mkdir(parents=True)
    for name in ("prepared", "topology", "models/teacher_image", "models/teacher_topology"):
        (tmp_path / "data" / name).symlink_to(dag / "data" / name)
    monkeypatch.chdir(tmp_path)
    params = validate(tiny_params())
    real = teacher_cache._epoch_outputs
    epochs = []

    def killed_in_epoch_two(teachers, inputs, needs, order, *args):
        epochs.append(order[:4].tolist())
        if len(epochs) == 2:
            raise KeyboardInterrupt
        return real(teachers, inputs, needs, order, *args)

    monkeypatch.setattr(teacher_cache, "_epoch_outputs", killed_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        cache_teachers(params)
    assert not (CACHE / STORE).exists()  # nothing half-written where distill looks
    monkeypatch.setattr(teacher_cache, "_epoch_outputs", real)
    calls = []
    monkeypatch.setattr(teacher_cache, "_epoch_outputs", lambda *a: calls.append(1) or real(*a))
    cache_teachers(params)
    assert "resuming, 1 of 2 epochs" in capsys.readouterr().out and len(calls) == 1
    assert tree_digest(CACHE / STORE) == tree_digest(dag / CACHE / STORE)


def test_kd_alone_caches_logits_in_one_pass(dag, tmp_path, monkeypatch):
    (tmp_path / "data" / "models").mkdir(parents=True)
    for name in ("prepared", "topology", "models/teacher_image", "models/teacher_topology"):
        (tmp_path / "data" / name).symlink_to(dag / "data" / name)
    monkeypatch.chdir(tmp_path)
    params = validate(tiny_params(**{"distill.methods": ["kd"]}))
    passes = []
    real = teacher_cache._epoch_outputs
    monkeypatch.setattr(teacher_cache, "_epoch_outputs", lambda *a: passes.append(1) or real(*a))
    summary = cache_teachers(params)
    assert summary["needs"] == {"image": []} and summary["map_epochs"] == 0 and len(passes) == 1
    feed = feed_for("kd", params, torch.device("cpu"))
    order = epoch_order(params.train.seed, 1, 120)
    batch = feed(1, 0, order[:32])  # the second epoch's order is there although no pass ran for it
    same = feed_for("kd", validate(tiny_params()), torch.device("cpu"))
    assert same is not None  # identity does not depend on distill.methods
    full = teacher_cache.TeacherFeed(dag / CACHE / STORE, {"image": ()}, torch.device("cpu"))
    torch.testing.assert_close(batch.logits["image"], full(1, 0, order[:32]).logits["image"])
    assert feed_for("tgd", params, torch.device("cpu")) is None


def test_two_raw_teachers_train_cache_and_distill_tgd(tmp_path, dag, monkeypatch, capsys):
    """models.teacher_topology_input: x - teacher 2 is a second raw-input network with its own
    seed; the cache stores its outputs on raw inputs, and tgd trains the same student from the
    cache as from the running teachers, never reading persistence images."""
    (tmp_path / "data").mkdir()
    for name in ("prepared", "topology"):
        os.symlink(dag / "data" / name, tmp_path / "data" / name)
    monkeypatch.chdir(tmp_path)
    raw = tiny_params(**{"models.teacher_topology_input": "x", "distill.methods": ["tgd"]})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    params = validate(raw)
    summary = train_teacher("topology", params)
    teacher2 = read_checkpoint("data/models/teacher_topology/last.pt")
    train_teacher("image", params)
    teacher1 = read_checkpoint("data/models/teacher_image/last.pt")
    pi_teacher = read_checkpoint(dag / "data/models/teacher_topology/last.pt")
    assert teacher2["meta"]["in_channels"] == teacher1["meta"]["in_channels"]   # raw images
    assert teacher2["meta"]["in_channels"] != pi_teacher["meta"]["in_channels"]  # not the PIs
    differs = [k for k in teacher1["state_dict"]
               if not torch.equal(teacher1["state_dict"][k], teacher2["state_dict"][k])]
    assert differs, "teacher 2 must be another network (its own seed), not a copy of teacher 1"
    assert summary["teacher_topology_acc"] > 0
    train_student(params)
    assert cache_teachers(params)["cached"]

    distill("tgd", params)
    assert "tgd: teacher outputs from" in capsys.readouterr().out
    cached = read_checkpoint("data/models/tgd/last.pt")["state_dict"]
    distill("tgd", validate(dict(raw, distill=dict(raw["distill"], teacher_cache=False))))
    computed = read_checkpoint("data/models/tgd/last.pt")["state_dict"]
    for key in cached:
        torch.testing.assert_close(cached[key], computed[key], rtol=1e-5, atol=1e-6, msg=key)
    live = json.loads(Path("data/live/tgd/metrics.json").read_text())
    assert live["tgd_share_g1"] > 0.0    # teacher 2's maps enter the merged map
