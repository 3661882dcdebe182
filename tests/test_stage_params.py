"""Each stage re-runs for the params it reads and for nothing else, read from dvc.yaml through
DVC's own index (what `dvc repro` and `dvc exp run -S` use): a method's key reaches its
distill@<method> stage and what follows it, never another method's stage."""
import networkx as nx
import pytest
from dvc.dependency.param import ParamsDependency
from dvc.repo import Repo

from conftest import REPO


@pytest.fixture(scope="module")
def index():
    repo = Repo(str(REPO))
    try:
        yield repo.index
    finally:
        repo.close()


def _reads(stage, key: str) -> bool:
    """Whether `stage` lists `key` or a section above it among its params."""
    listed = [p for d in stage.deps if isinstance(d, ParamsDependency) for p in (d.params or [])]
    return any(key == p or key.startswith(p + ".") for p in listed)


def rerun_by(index, key: str) -> set[str]:
    """The stages a change of params key `key` re-runs: those reading it and all downstream."""
    direct = [s for s in index.stages if _reads(s, key)]
    downstream = set(direct)
    for stage in direct:
        downstream |= nx.ancestors(index.graph, stage)  # the graph's edges point to dependencies
    return {s.addressing for s in downstream}


@pytest.mark.parametrize("key, expected", [
    ("distill.tgd.alpha", {"distill@tgd", "export", "evaluate"}),
    ("distill.tpkd.beta", {"distill@tpkd", "export", "evaluate"}),
    ("distill.kd.kl_reduction", {"distill@kd", "export", "evaluate"}),
    ("distill.sp.gamma", {"distill@sp", "export", "evaluate"}),
])
def test_a_methods_key_reruns_its_stage_and_what_follows(index, key, expected):
    assert rerun_by(index, key) == expected


def test_a_topology_key_never_reruns_teacher_1_or_the_scratch_student(index):
    stages = rerun_by(index, "topology.image.threshold")
    assert {"topology", "train_teacher@topology", "teachers", "distill@tgd"} <= stages
    assert not stages & {"prepare", "train_teacher@image", "train_student"}


def test_a_training_key_never_reruns_the_data_stages(index):
    stages = rerun_by(index, "train.lr")
    assert {"train_teacher@image", "train_student", "distill@kd"} <= stages
    assert not stages & {"source", "prepare", "topology", "topology_figure"}
