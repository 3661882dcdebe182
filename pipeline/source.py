"""The source data as a DVC dependency: a fingerprint of the files under `data.root`.

DVC sees only files inside the repository, and `data.root` may be anywhere, or a URL. So the
`source` stage (`always_changed` in dvc.yaml) lists the files under the root on every
`dvc repro` and writes data/source.json: per folder (the first two levels, e.g. `train/cat`)
the number of files, their bytes and a digest of every file's relative name, size and
modification time (an object store's ETag where it has one). `prepare` depends on that file, so
it re-runs, with everything downstream, exactly when the source changed; an unchanged source
gives the same file, and DVC skips it.

Contents are not read: listing 60,000 files costs a fraction of a second, hashing them would
cost seconds. A file rewritten with the same size and an old modification time (`cp -p`,
`touch -d`) goes unnoticed; `dvc repro -f prepare` forces the stage then. Hidden files and
folders (`.name`) are left out, as the loaders ignore them. Data sets without a root (digits,
basicmotions) get a constant fingerprint.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Iterator

from pipeline import locations
from pipeline.errors import DataError

FOLDER_DEPTH = 2  # folders summarised by name in the fingerprint: train/cat, test/dog, ...


def source_fingerprint(root: str | None) -> dict[str, Any]:
    """{"files", "bytes", "digest", "folders": {folder: {"files", "bytes", "digest"}}} of a root."""
    if root is None:
        return {"files": 0, "bytes": 0, "digest": hashlib.sha256(b"no data.root").hexdigest(), "folders": {}}
    lines: dict[str, list[str]] = {}
    folders: dict[str, dict[str, Any]] = {}
    for folder, files in _listing(str(root)):
        group = "/".join(folder.split("/")[:FOLDER_DEPTH]) if folder else "."
        summary = folders.setdefault(group, {"files": 0, "bytes": 0})
        summary["files"] += len(files)
        summary["bytes"] += sum(size for _, size, _ in files)
        prefix = f"{folder}/" if folder else ""
        lines.setdefault(group, []).extend(f"{prefix}{name}\t{size}\t{stamp}\n" for name, size, stamp in files)
    total = hashlib.sha256()
    for group in sorted(folders):
        folders[group]["digest"] = hashlib.sha256("".join(sorted(lines[group])).encode()).hexdigest()
        total.update(f"{group}\t{folders[group]['digest']}\n".encode())
    return {"files": sum(f["files"] for f in folders.values()),
            "bytes": sum(f["bytes"] for f in folders.values()),
            "digest": total.hexdigest(), "folders": dict(sorted(folders.items()))}


def _listing(root: str) -> Iterator[tuple[str, list[tuple[str, int, Any]]]]:
    """(folder relative to root with `/`, [(file name, size, change stamp)]) for every folder."""
    if locations.is_url(root):
        fs, path = locations.filesystem(root)
        if "file" in ((fs.protocol,) if isinstance(fs.protocol, str) else fs.protocol):
            yield from _local_listing(Path(path), root)
        else:
            yield from _url_listing(fs, path, root)
    else:
        yield from _local_listing(Path(root).expanduser(), root)


def _local_listing(root: Path, shown: str) -> Iterator[tuple[str, list[tuple[str, int, int]]]]:
    if not root.is_dir():
        raise DataError(f"data.root {shown}: no such folder")
    stack = [(str(root), "")]
    while stack:
        folder, rel = stack.pop()
        files = []
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    stack.append((entry.path, f"{rel}/{entry.name}" if rel else entry.name))
                elif entry.is_file():
                    info = entry.stat()
                    files.append((entry.name, info.st_size, info.st_mtime_ns))
        if files:
            yield rel, files


def _url_listing(fs, path: str, shown: str) -> Iterator[tuple[str, list[tuple[str, int, str]]]]:
    base = path.rstrip("/")
    with locations.reaching(shown, "data.root "):
        if not fs.isdir(base):
            raise DataError(f"data.root {shown}: no such folder")
        found = fs.find(base, detail=True)
    folders: dict[str, list] = {}
    for name, info in found.items():
        rel = name[len(base):].lstrip("/")
        if info.get("type") == "directory" or any(part.startswith(".") for part in rel.split("/")):
            continue
        folder, _, file = rel.rpartition("/")
        folders.setdefault(folder, []).append((file, int(info.get("size") or 0), _stamp(info)))
    yield from folders.items()


def _stamp(info: dict[str, Any]) -> str:
    """What changes when an object is rewritten: its ETag or hash where the store gives one,
    else its modification or creation time."""
    for key in ("ETag", "etag", "md5Hash", "crc32c", "mtime", "LastModified", "last_modified",
                "updated", "created"):
        if info.get(key) is not None:
            return str(info[key])
    return ""


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What differs between two fingerprints, one phrase per folder: `train/cat: 3 -> 4 files`."""
    old, new = before.get("folders", {}), after.get("folders", {})
    out = []
    for folder in sorted(set(old) | set(new)):
        if folder not in old:
            out.append(f"{folder}: new ({new[folder]['files']} files)")
        elif folder not in new:
            out.append(f"{folder}: gone ({old[folder]['files']} files)")
        elif old[folder]["digest"] != new[folder]["digest"]:
            out.append(f"{folder}: {old[folder]['files']} -> {new[folder]['files']} files, "
                       f"{old[folder]['bytes']} -> {new[folder]['bytes']} bytes")
    return out

