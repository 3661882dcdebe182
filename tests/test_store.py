"""Sharded zarr stores: round trip, a handful of shard files, atomic writes."""
import numpy as np
import pytest
import zarr

from pipeline.errors import DataError
from pipeline.store import (_plain_shard_layout, create_array, create_group, read_split, shard_slices,
                            tree_digest, write_split, write_whole_shard)


def test_shard_slices_cover_every_sample_once():
    parts = shard_slices(10_001, 4096)
    assert [(p.start, p.stop) for p in parts] == [(0, 4096), (4096, 8192), (8192, 10_001)]
    assert shard_slices(0, 10) == []


def test_round_trip_with_few_shard_files(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(3000, 8, 8, 3), dtype=np.uint8)
    y = rng.integers(0, 10, size=3000).astype(np.int64)
    path = tmp_path / "train.zarr"
    write_split(path, {"x": x, "y": y}, {"classes": list("abcdefghij")}, shard_size=1024)
    arrays, attrs = read_split(path)
    np.testing.assert_array_equal(arrays["x"], x)
    np.testing.assert_array_equal(arrays["y"], y)
    assert attrs["classes"] == list("abcdefghij")
    shard_files = [p for p in (path / "x").rglob("*") if p.is_file() and p.name != "zarr.json"]
    assert len(shard_files) == 3  # 3000 samples / 1024 per shard, not one file per sample
    # side by side in the array's folder, where DVC hashes them on parallel threads
    assert sorted(p.relative_to(path / "x").as_posix() for p in shard_files) == ["c.0.0.0.0", "c.1.0.0.0",
                                                                                 "c.2.0.0.0"]
    assert zarr.open_array(str(path / "x")).shards[0] == 1024
    assert not (tmp_path / "train.zarr.partial").exists()


def test_rewrite_is_byte_identical(tmp_path):
    x = np.arange(5000, dtype=np.float32).reshape(500, 10)
    write_split(tmp_path / "a.zarr", {"x": x}, {"k": 1}, shard_size=128)
    write_split(tmp_path / "b.zarr", {"x": x}, {"k": 1}, shard_size=128)
    assert tree_digest(tmp_path / "a.zarr") == tree_digest(tmp_path / "b.zarr")


def test_missing_store_names_the_path(tmp_path):
    with pytest.raises(DataError, match="nowhere.zarr"):
        read_split(tmp_path / "nowhere.zarr")
    write_split(tmp_path / "s.zarr", {"x": np.zeros((4, 2))}, {}, shard_size=2)
    with pytest.raises(DataError, match=r"\['pis'\] missing"):
        read_split(tmp_path / "s.zarr", ["pis"])


def test_inputs_with_labels_that_disagree_fail_by_path(tmp_path):
    """A topology store whose labels are not the prepared store's (a stale or foreign store)
    must not train silently: load_inputs names the store and says what to re-run."""
    from pipeline.errors import DataError
    from pipeline.inputs import load_inputs
    from pipeline.store import split_path, write_split

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        y = np.arange(8, dtype=np.int64) % 2
        write_split(split_path(tmp_path / "prepared", split),
                    {"x": rng.integers(0, 255, (8, 4, 4, 1), dtype=np.uint8), "y": y},
                    {"classes": ["a", "b"], "modality": "image", "mean": [0.5], "std": [0.2]}, 4)
        write_split(split_path(tmp_path / "topology", split),
                    {"pis": rng.random((8, 2, 3, 3), dtype=np.float32), "y": 1 - y},
                    {"mean": [0.1, 0.1], "std": [1.0, 1.0]}, 4)
    with pytest.raises(DataError, match="topology/train: labels differ"):
        load_inputs(tmp_path / "prepared", tmp_path / "topology")


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_a_whole_uncompressed_shard_is_written_as_zarr_writes_it(tmp_path, dtype):
    """write_whole_shard's raw bytes + index are zarr's own file, byte for byte; a partial last
    shard and a compressed array take zarr's own write; zarr reads every one back."""
    values = np.random.default_rng(0).random((1100, 2, 3, 3)).astype(dtype)
    for codec in ("none", "zstd"):
        ours, zarrs = (create_array(create_group(tmp_path / f"{name}-{codec}.zarr"), "pis", values.shape, dtype,
                                    512, codec=codec, chunk_samples=128) for name in ("ours", "zarr"))
        for index, rows in enumerate(shard_slices(len(values), 512)):
            key = ours.metadata.encode_chunk_key((index, 0, 0, 0))
            raw = _plain_shard_layout(ours, rows, values[rows])   # the raw path: whole, uncompressed
            assert (raw is not None) == (codec == "none" and rows.stop - rows.start == 512)
            write_whole_shard(ours, tmp_path / f"ours-{codec}.zarr" / "pis" / key, rows, values[rows])
            zarrs[rows] = values[rows]
            assert (tmp_path / f"ours-{codec}.zarr" / "pis" / key).read_bytes() == \
                (tmp_path / f"zarr-{codec}.zarr" / "pis" / key).read_bytes()
        np.testing.assert_array_equal(zarr.open_array(str(tmp_path / f"ours-{codec}.zarr" / "pis"))[...], values)
