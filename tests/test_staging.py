"""pipeline.staging: a staging folder stamped with an identity, done markers, publishing a store.

The same behaviour for a local path and an fsspec URL (file://, the fsspec route)."""
from __future__ import annotations

import numpy as np
import pytest
import zarr

from pipeline import locations
from pipeline.staging import STAMP, Staging, open_staging, publish_store
from pipeline.store import create_array, create_group, open_split, tree_digest


@pytest.fixture(params=["path", "url"])
def root(request, tmp_path):
    return tmp_path / "staging" if request.param == "path" else f"file://{tmp_path}/staging"


def test_same_identity_resumes_and_another_is_discarded_in_one_line(root):
    lines: list[str] = []
    made = []
    staging = open_staging(root, "a", lines.append, folders=("stats",), prepare=made.append)
    assert not staging.resumed and made == [staging] and lines == []
    assert locations.read_text(locations.join(root, STAMP)) == "a\n"
    staging.mark_done("train-000001", "0 32\n")
    staging.mark_done("epoch-000000")

    again = open_staging(root, "a", lines.append, folders=("stats",), prepare=made.append)
    assert again.resumed and len(made) == 1 and lines == []
    assert again.done_units() == ["epoch-000000", "train-000001"]
    assert again.is_done("train-000001") and again.done_text("train-000001") == "0 32\n"

    other = open_staging(root, "b", lines.append, shown="data/.staging/x")
    assert not other.resumed and other.done_units() == []
    assert lines == ["discarding data/.staging/x: it holds work for another recipe or input"]


def test_a_folder_without_its_stamp_is_never_resumed(root):
    def killed(_):
        raise KeyboardInterrupt  # a kill while the folder is set up

    with pytest.raises(KeyboardInterrupt):
        open_staging(root, "a", prepare=killed)
    assert not locations.exists(locations.join(root, STAMP))
    lines: list[str] = []
    assert not open_staging(root, "a", lines.append).resumed
    assert len(lines) == 1 and lines[0].startswith("discarding")


def test_marker_temporaries_do_not_count(tmp_path):
    staging = open_staging(tmp_path / "s", "a")
    (tmp_path / "s" / "done" / "train-000004.tmp").write_text("")
    staging.mark_done("train-000003")
    assert staging.done_units() == ["train-000003"] and not staging.is_done("train-000004")
    assert Staging(tmp_path / "nowhere").done_units() == []


def _store(path) -> None:
    group = create_group(path, {"kept": 1})
    array = create_array(group, "x", (6, 2), np.float32, 4)
    array[...] = np.arange(12, dtype=np.float32).reshape(6, 2)


@pytest.mark.parametrize("target_kind", ["path", "url"])
def test_publish_store_links_shards_adds_attributes_and_keeps_the_staged_copy(tmp_path, target_kind):
    staged = tmp_path / "staged.zarr"
    _store(staged)
    (staged / "x" / "c.0.0.0123abcd.partial").write_bytes(b"junk")  # zarr's temporary of a killed write
    before = tree_digest(staged)
    target = tmp_path / "out" / "train.zarr"
    where = target if target_kind == "path" else f"file://{target}"
    (target / "old").mkdir(parents=True)  # replaced, not merged
    publish_store(staged, where, {"split": "train", "mean": np.float64(0.5)})
    assert tree_digest(staged) == before  # the staged store is untouched
    published = open_split(target)
    assert dict(published.attrs) == {"kept": 1, "split": "train", "mean": 0.5}
    assert np.array_equal(published["x"][...], zarr.open_group(str(staged))["x"][...])
    assert not (target / "old").exists() and not (tmp_path / "out" / "train.zarr.partial").exists()
    assert not any(p.name.endswith(".partial") for p in target.rglob("*"))
    if target_kind == "path":  # shard files are hard links, metadata files copies
        assert (target / "x" / "c.0.0").stat().st_ino == (staged / "x" / "c.0.0").stat().st_ino
        assert (target / "zarr.json").stat().st_ino != (staged / "zarr.json").stat().st_ino
