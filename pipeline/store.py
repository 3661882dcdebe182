"""Sharded zarr v3 stores: the artifacts that flow between stages.

One store per split (`<dir>/<split>.zarr`), a zarr group holding named arrays whose first axis
is the sample. Arrays are sharded along that axis (`shard_size` samples per file), so a split of
50,000 samples is a handful of files and `dvc status` stays fast (one file per sample made it take
half a minute). An array's shard files lie side by side in its folder (`pis/c.3.0.0.0`, not
zarr's default `pis/c/3/0/0/0`): DVC hashes the large files of one folder on parallel threads
(`core.checksum_jobs` in .dvc/config) and those of one-file folders one after another, so the
flat layout cut the time `dvc repro` spends beside the CIFAR-10 topology stage from 6.3 to 4.1 s.
Zarr rewrites a whole shard when any part of it is written, so parallel writers must each own
whole shards: arrays are created once by the parent and workers write `shard_slices` of them.

Every location here is a local path or an fsspec URL (pipeline.locations): local paths keep
their pathlib code (atomic renames), URLs go through fsspec and zarr's FsspecStore and give the
same files, byte for byte.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import zarr

from pipeline import locations
from pipeline.errors import DataError

SPLITS = ("train", "test")
CHUNK_SAMPLES = 256  # inner chunk: small enough for partial reads, large enough to compress well
# Shard files named `c.<i>.0.0...` in the array's folder (see above: DVC hashes them in parallel).
FLAT_SHARD_FILES = {"name": "default", "separator": "."}


def split_path(directory: str | Path, split: str) -> Path | str:
    """`<directory>/<split>.zarr`: a Path, or a URL string for a URL directory."""
    return locations.join(directory, f"{split}.zarr")


def shard_slices(n: int, shard_size: int) -> list[slice]:
    """The sample ranges of each shard of an array of n samples."""
    return [slice(start, min(start + shard_size, n)) for start in range(0, n, shard_size)]


def create_group(path: str | Path, attrs: dict[str, Any] | None = None) -> zarr.Group:
    group = zarr.open_group(locations.zarr_store(path), mode="w", zarr_format=3)
    if attrs:
        group.attrs.update(jsonable(attrs))
    return group


def _compressors(codec: str):
    """A store's compressors inside each shard; the choice per array is measured in docs/topology.md."""
    if codec == "zstd":
        return "auto"  # zarr's default for v3 arrays: zstd level 0
    if codec == "lz4":
        from zarr.codecs import BloscCodec

        return [BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")]
    if codec == "none":
        return None
    raise ValueError(f"unknown codec {codec!r}; known: zstd, lz4, none")


def create_array(group: zarr.Group, name: str, shape: tuple[int, ...], dtype: Any,
                 shard_size: int, codec: str = "zstd", chunk_samples: int = CHUNK_SAMPLES) -> zarr.Array:
    """An empty array sharded along the sample axis (one shard file per `shard_size` samples),
    chunked by `chunk_samples` samples inside each shard."""
    n = shape[0]
    shard = max(1, min(shard_size, n))
    chunk = max(1, min(chunk_samples, shard))
    shard -= shard % chunk  # a shard holds a whole number of chunks
    return group.create_array(
        name, shape=shape, dtype=dtype,
        chunks=(chunk, *shape[1:]), shards=(shard, *shape[1:]),
        fill_value=0, compressors=_compressors(codec),
        chunk_key_encoding=FLAT_SHARD_FILES,
    )


def write_whole_shard(array: zarr.Array, shard_file: str | Path, rows: slice, values: np.ndarray) -> None:
    """`array[rows] = values` for rows that are exactly one whole shard, as zarr would store it.

    An uncompressed shard is the inner chunks' bytes in order - for chunks along the first axis,
    the C-ordered block itself - followed by its index ((offset, size) per chunk, uint64 little
    endian) and the index's CRC32C. Local uncompressed shards are written so, straight from the
    block's memory: zarr's own write copies 245 MB of persistence images three times over and
    took 5-10x as long (docs/topology.md). Any other case (a URL, compression, a partial shard,
    another layout) is zarr's write. The file is byte-identical to zarr's (tests/test_store.py),
    except that zarr leaves out an inner chunk that is all fill value."""
    layout = _plain_shard_layout(array, rows, values)
    if layout is None or locations.is_url(shard_file):
        array[rows] = values
        return
    chunk_bytes, n_chunks = layout
    import google_crc32c   # zarr's own CRC32C (a zarr dependency)

    index = np.empty((n_chunks, 2), "<u8")
    index[:, 0] = np.arange(n_chunks, dtype=np.uint64) * chunk_bytes
    index[:, 1] = chunk_bytes
    index_bytes = index.tobytes()
    crc = np.uint32(google_crc32c.value(index_bytes)).astype("<u4").tobytes()
    Path(shard_file).parent.mkdir(parents=True, exist_ok=True)
    with open(shard_file, "wb") as handle:
        handle.write(memoryview(values).cast("B"))
        handle.write(index_bytes + crc)


def _plain_shard_layout(array: zarr.Array, rows: slice, values: np.ndarray) -> tuple[int, int] | None:
    """(bytes per inner chunk, chunks per shard) when `values` can be written as raw shard bytes."""
    from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec
    from zarr.codecs.sharding import ShardingCodecIndexLocation

    codecs = array.metadata.codecs if array.metadata.zarr_format == 3 else ()
    if len(codecs) != 1 or not isinstance(codecs[0], ShardingCodec):
        return None
    sharding, shard = codecs[0], array.shards
    little = lambda c: isinstance(c, BytesCodec) and c.endian is not None and c.endian.value == "little"
    inner = sharding.chunk_shape
    if not (len(sharding.codecs) == 1 and little(sharding.codecs[0])
            and len(sharding.index_codecs) == 2 and little(sharding.index_codecs[0])
            and isinstance(sharding.index_codecs[1], Crc32cCodec)
            and sharding.index_location == ShardingCodecIndexLocation.end
            and tuple(inner[1:]) == tuple(array.shape[1:]) == tuple(shard[1:]) and shard[0] % inner[0] == 0):
        return None
    if not (rows.start % shard[0] == 0 and rows.stop - rows.start == shard[0] <= array.shape[0] - rows.start
            and values.shape == (shard[0], *array.shape[1:]) and values.dtype == array.dtype
            and values.dtype.byteorder in ("<", "=", "|") and values.flags.c_contiguous):
        return None
    return values[:inner[0]].nbytes, shard[0] // inner[0]


def write_split(path: str | Path, arrays: dict[str, np.ndarray], attrs: dict[str, Any],
                shard_size: int) -> None:
    """Write a whole split at once, atomically: a crash never leaves a store that looks done.

    At a URL the store is written at `<path>.partial` and then moved into place; on object
    stores the move is a copy that writes the group's zarr.json last, so a store cut short
    has no zarr.json and `open_split` refuses it."""
    partial = locations.as_location(str(path).rstrip("/") + ".partial")
    locations.rmtree(partial)
    group = create_group(partial, attrs)
    for name, values in arrays.items():
        array = create_array(group, name, values.shape, values.dtype, shard_size)
        for part in shard_slices(len(values), array.shards[0]):
            array[part] = values[part]
    locations.rmtree(path)
    if locations.is_url(path):
        locations.move(partial, str(path))
    else:
        os.replace(partial, path)  # one rename: the store appears whole or not at all


def open_split(path: str | Path) -> zarr.Group:
    if locations.is_url(path):
        if not locations.is_file(locations.join(path, "zarr.json")):
            raise DataError(f"{path}: no zarr store here; run the stage that produces it")
        return zarr.open_group(locations.zarr_store(path, read_only=True), mode="r", zarr_format=3)
    path = Path(path)
    if not (path / "zarr.json").is_file():
        raise DataError(f"{path}: no zarr store here; run the stage that produces it (dvc repro)")
    return zarr.open_group(str(path), mode="r", zarr_format=3)


def read_split(path: str | Path, names: Iterable[str] | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """Arrays (whole, in memory) and attributes of a split store."""
    group = open_split(path)
    names = list(names) if names is not None else sorted(group.array_keys())
    missing = [n for n in names if n not in group]
    if missing:
        raise DataError(f"{path}: arrays {missing} missing (has {sorted(group.array_keys())})")
    return {n: group[n][...] for n in names}, dict(group.attrs)


def tree_digest(path: str | Path) -> str:
    """A content hash (sha256) of every file under path, names and bytes: the identity of an input
    artifact. Of a store that is its zarr.json files (every array's dtype and shape) and its shard
    files (the contents): a dtype change or two samples swapped change it. 2.9 s for a 3.4 GB
    float32 store in the page cache, 6.5 s read from disk (one core with SHA-NI)."""
    digest = hashlib.sha256()
    if locations.is_url(path):  # the same digest as the same files in a local folder
        for rel in sorted(locations.files(str(path)), key=lambda r: r.split("/")):
            digest.update(rel.encode())
            digest.update(locations.read_bytes(locations.join(path, rel)))
        return digest.hexdigest()
    root = Path(path)
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(root)).encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


_DIGESTS: dict[tuple, str] = {}  # content_digest's memory: (folder, its files' stats) -> digest


def content_digest(path: str | Path) -> str:
    """`tree_digest(path)`, remembered in this process while no file under a local `path` changes
    name, size, inode or modification time (a stage asks for its inputs' identity more than once:
    the run's fingerprint, the teacher cache's); a URL is hashed every time. A missing folder
    hashes as an empty one."""
    if locations.is_url(path):
        return tree_digest(path)
    root = Path(path)
    stats = [(str(f.relative_to(root)), f.stat()) for f in sorted(root.rglob("*")) if f.is_file()]
    key = (str(root.absolute()), tuple((rel, st.st_size, st.st_ino, st.st_mtime_ns) for rel, st in stats))
    if key not in _DIGESTS:
        _DIGESTS[key] = tree_digest(root)
    return _DIGESTS[key]


def write_json(path: str | Path, payload: Any) -> None:
    """Write JSON atomically (temporary file, then rename; at a URL one PUT)."""
    text = json.dumps(jsonable(payload), indent=2, sort_keys=True) + "\n"
    if locations.is_url(path):
        locations.write_text(str(path), text)
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:  # never leave a temporary file in a stage's output
        tmp.unlink(missing_ok=True)
        raise


def jsonable(value: Any) -> Any:
    """`value` with numpy scalars and arrays made plain Python (lists, numbers) and dict keys
    made strings: what JSON and zarr attributes hold."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
