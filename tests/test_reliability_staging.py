"""Staging folders damaged by hand (pipeline.staging): a stamp of binary junk, empty or a folder,
`done/` a file, a done marker a folder. The folder is discarded with one line saying what was
wrong and the work starts anew, for the topology stage and the teacher cache alike; the output
is byte-identical to an uninterrupted run's."""
import shutil

import pytest

import pipeline.teacher_cache as teacher_cache
from conftest import tiny_params
from pipeline.layout import TEACHERS_STAGING
from pipeline.params import validate
from pipeline.staging import DONE, STAMP, open_staging
from pipeline.store import tree_digest
from pipeline.teacher_cache import STORE, cache_teachers
from pipeline.topology_stage import compute_topology
from test_reliability_topology import N_SAMPLES, Killed, _cfg, _keep_staging, prepared, reference  # noqa: F401
from test_teacher_cache import CACHE, dag  # noqa: F401

STAMP_GONE = f"its stamp ({STAMP}) is missing or unreadable (a run cut short while setting it up, or a damaged file)"


def _stamp_junk(root):
    (root / STAMP).write_bytes(b"\xff\xfe\x00\x80 junk")


def _stamp_empty(root):
    (root / STAMP).write_bytes(b"")


def _stamp_folder(root):
    (root / STAMP).unlink()
    (root / STAMP).mkdir()
    (root / STAMP / "identity").write_text("x\n")


def _done_a_file(root):
    shutil.rmtree(root / DONE)
    (root / DONE).write_bytes(b"\x00\x01")


def _marker_a_folder(root):
    marker = sorted((root / DONE).iterdir())[0]
    marker.unlink()
    marker.mkdir()
    return marker.name


DAMAGES = {"stamp junk": (_stamp_junk, STAMP_GONE), "stamp empty": (_stamp_empty, STAMP_GONE),
           "stamp a folder": (_stamp_folder, STAMP_GONE),
           "done a file": (_done_a_file, f"its folder {DONE}/ is missing or not a folder"),
           "marker a folder": (_marker_a_folder, f"its done marker {DONE}/{{marker}} is not a file")}


def _damage(root, name) -> str:
    damage, why = DAMAGES[name]
    return why.format(marker=damage(root))


@pytest.mark.parametrize("name", sorted(DAMAGES))
def test_a_damaged_folder_is_discarded_in_one_line(tmp_path, name):
    root = tmp_path / "s"
    open_staging(root, "a", folders=("stats",)).mark_done("train-000000", "0 32\n")
    why = _damage(root, name)
    lines = []
    staging = open_staging(root, "a", lines.append, folders=("stats",), shown="data/.staging/x")
    assert lines == [f"discarding data/.staging/x: {why}"]
    assert not staging.resumed and staging.done_units() == []
    staging.mark_done("train-000000")  # and the new folder works
    assert open_staging(root, "a", lines.append, folders=("stats",)).resumed and len(lines) == 1


@pytest.mark.parametrize("name", ["stamp junk", "marker a folder"])
def test_the_topology_stage_recomputes_after_a_damaged_staging(tmp_path, prepared, reference,  # noqa: F811
                                                               monkeypatch, name):
    staging, out = tmp_path / "staging", tmp_path / "topology"
    _keep_staging(monkeypatch)
    with pytest.raises(Killed):
        compute_topology(prepared, out, _cfg(), staging=staging, progress=False)
    monkeypatch.undo()
    why = _damage(staging, name)
    lines = []
    summary = compute_topology(prepared, out, _cfg(), staging=staging, progress=False, print_fn=lines.append)
    assert [line for line in lines if line.startswith("discarding")] == [f"discarding {staging}: {why}"]
    assert summary["samples_computed"] == N_SAMPLES
    assert tree_digest(out) == reference


@pytest.mark.parametrize("name", ["stamp junk", "stamp a folder", "marker a folder"])
def test_the_teacher_cache_recomputes_after_a_damaged_staging(dag, tmp_path, monkeypatch, capsys, name):  # noqa: F811
    (tmp_path / "data" / "models").mkdir(parents=True)
    for folder in ("prepared", "topology", "models/teacher_image", "models/teacher_topology"):
        (tmp_path / "data" / folder).symlink_to(dag / "data" / folder)
    monkeypatch.chdir(tmp_path)
    params = validate(tiny_params())
    real = teacher_cache._epoch_outputs
    calls = []

    def killed_in_epoch_two(*args):
        calls.append(1)
        if len(calls) == 2:
            raise Killed
        return real(*args)

    monkeypatch.setattr(teacher_cache, "_epoch_outputs", killed_in_epoch_two)
    with pytest.raises(Killed):
        cache_teachers(params)
    why = _damage(tmp_path / TEACHERS_STAGING, name)
    capsys.readouterr()
    cache_teachers(params)
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if "discarding" in line or "resuming" in line] == \
        [f"discarding {TEACHERS_STAGING}: {why}"]
    assert len(calls) == 2 + 2  # both epochs computed again
    assert tree_digest(CACHE / STORE) == tree_digest(dag / CACHE / STORE)
