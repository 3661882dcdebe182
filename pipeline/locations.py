"""Artifact locations: a local path, or an fsspec URL (s3://, gs://, memory://, file://, ...).

Local paths (str or Path without a protocol) keep the pathlib/os code paths of pipeline.store
and pipeline.staging untouched: atomic renames, hard links, byte-identical outputs. A URL
goes through fsspec's file-system operations and zarr's FsspecStore, so a cluster's workers can
share stores on object storage. Object stores have no atomic rename of a folder: there a store
is written in `<name>.partial` and moved into place (a server-side copy), and a marker file is
written in one PUT (atomic per object).

`file://` URLs deliberately take the fsspec route too (not the local one): they stand in for an
object store in tests and on a shared network file system. For plain local work use a path.
"""
from __future__ import annotations

import contextlib
import errno
import importlib.util
import os
import posixpath
from pathlib import Path
from typing import Any, Iterator

import fsspec
from fsspec.registry import known_implementations

from pipeline.errors import DataError


def is_url(location: Any) -> bool:
    """True for an fsspec URL (`proto://...` or a chained `a::b://...`), False for a local path."""
    return isinstance(location, str) and ("://" in location or "::" in location)


def as_location(location: str | Path) -> str | Path:
    """A URL stays a string (pathlib would fold its `//`); anything else becomes a Path."""
    return location if is_url(location) else Path(location)


def join(base: str | Path, *names: str) -> str | Path:
    """`base / name / ...` for a path or a URL."""
    if is_url(base):
        return "/".join([str(base).rstrip("/"), *names])
    return Path(base, *names)


def name(location: str | Path) -> str:
    return posixpath.basename(str(location).rstrip("/")) if is_url(location) else Path(location).name


def _storage_options(url: str) -> dict[str, Any]:
    protocol = fsspec.core.split_protocol(url)[0]
    # The local file system does not create parent folders on write unless told to.
    return {"auto_mkdir": True} if protocol in (None, "file", "local") else {}


def filesystem(location: str | Path):
    """(fsspec file system, path inside it) of a URL, or of a local path (the local file system).

    A URL whose protocol fsspec does not know, or whose backend package is not installed
    (`s3://` without s3fs), is a DataError naming the URL and the package to install."""
    try:
        return fsspec.core.url_to_fs(str(location), **_storage_options(str(location)))
    except ImportError as error:
        raise DataError(_missing_backend(str(location), error)) from None
    except ValueError as error:
        if "Protocol not known" not in str(error):
            raise
        raise DataError(f"{location}: unknown URL protocol ({error}); use a local path or a URL "
                        "fsspec knows (s3://, gs://, az://, http://, memory://, file://, ...)") from None


def _missing_backend(url: str, error: ImportError) -> str:
    """Which package a URL's file system needs: the first protocol of a chain (`a::b://`) whose
    backend module cannot be imported."""
    for part in url.split("::"):
        protocol = fsspec.core.split_protocol(part)[0] or part
        module = known_implementations.get(protocol, {}).get("class", "").split(".")[0]
        if module and module != "fsspec" and importlib.util.find_spec(module) is None:
            return f"{url}: {protocol}:// needs the package {module}, which is not installed (pip install {module})"
    return f"{url}: a package its file system needs is not installed ({error})"


def zarr_store(location: str | Path, read_only: bool = False):
    """What zarr opens: a local path as a string (zarr's LocalStore), a URL as an FsspecStore."""
    if not is_url(location):
        return str(location)
    filesystem(location)  # a missing backend package: one line naming it
    from zarr.storage import FsspecStore

    return FsspecStore.from_url(location, storage_options=_storage_options(location),
                                read_only=read_only)


@contextlib.contextmanager
def naming(location: str | Path) -> Iterator[None]:
    """An OSError raised inside without a file name (a failed write to an open file, such as a
    full disk) gets `location` as its file name, so the one-line error says where."""
    try:
        yield
    except OSError as error:
        if error.filename is None:
            error.filename = str(location)
        raise


CONNECTION_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.EHOSTUNREACH, errno.ENETUNREACH,
                     errno.ETIMEDOUT}


@contextlib.contextmanager
def reaching(url: str, what: str = "") -> Iterator[None]:
    """A refused or failed connection inside becomes one DataError naming `url` (`what` is the
    params key it came from, e.g. "data.root ")."""
    try:
        yield
    except OSError as error:
        if not (isinstance(error, ConnectionError) or error.errno in CONNECTION_ERRNOS):
            raise
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise DataError(f"{what}{url}: cannot connect ({reason}); check the address and that "
                        "the server is up") from None


# -- file-system operations: each takes a local path or a URL. Atomic replacement of local files
# (temporary file, then rename) stays with the callers' pathlib code. -------------------------

def exists(location: str | Path) -> bool:
    fs, path = filesystem(location)
    return fs.exists(path)


def is_file(location: str | Path) -> bool:
    fs, path = filesystem(location)
    return fs.isfile(path)


def read_text(location: str | Path) -> str:
    return read_bytes(location).decode()


def write_text(location: str | Path, text: str) -> None:
    """One PUT: an object appears whole or not at all on object stores."""
    fs, path = filesystem(location)
    fs.pipe_file(path, text.encode())


def remove(location: str | Path) -> None:
    """Delete a file if it is there."""
    fs, path = filesystem(location)
    if fs.isfile(path):
        fs.rm_file(path)


def rmtree(location: str | Path) -> None:
    """Delete a folder (a key prefix) if it is there."""
    fs, path = filesystem(location)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def makedirs(location: str | Path) -> None:
    fs, path = filesystem(location)
    fs.makedirs(path, exist_ok=True)


def listdir(url: str) -> list[str]:
    """Names of the files directly in a folder ([] when there is none)."""
    fs, path = filesystem(url)
    if not fs.isdir(path):
        return []
    return sorted(posixpath.basename(p.rstrip("/")) for p in fs.ls(path, detail=False)
                  if fs.isfile(p))


def files(location: str | Path) -> list[str]:
    """Every file under a folder, as paths relative to it with `/` separators, sorted."""
    fs, path = filesystem(location)
    root = path.rstrip("/")
    return sorted(posixpath.relpath(p, root) for p in fs.find(root))


def read_bytes(location: str | Path) -> bytes:
    fs, path = filesystem(location)
    return fs.cat_file(path)


def copytree(source: str | Path, target: str | Path, skip_suffix: str | None = None) -> None:
    """Copy every file of folder `source` to folder `target`, on the same file system or across
    two (a local staging folder into a bucket, say)."""
    source_fs, src = filesystem(source)
    target_fs, dst = filesystem(target)
    same = source_fs.protocol == target_fs.protocol
    # The top-level zarr.json last: a copy cut short never looks like a complete zarr store.
    for rel in sorted(files(source), key=lambda r: (r == "zarr.json", r)):
        if skip_suffix and rel.endswith(skip_suffix):
            continue
        here, there = f"{src.rstrip('/')}/{rel}", f"{dst.rstrip('/')}/{rel}"
        if same:
            source_fs.copy(here, there)  # server-side on object stores
        else:
            target_fs.pipe_file(there, source_fs.cat_file(here))


def move(source: str, target: str) -> None:
    """Move a folder into place (a rename on file systems, copy + delete on object stores)."""
    fs, src = filesystem(source)
    _, dst = filesystem(target)
    if "file" in ((fs.protocol,) if isinstance(fs.protocol, str) else fs.protocol):
        fs.mv(src, dst, recursive=True)  # a rename
    else:
        copytree(source, target)
        rmtree(source)


def parent(location: str | Path) -> str | Path:
    """The folder holding a location."""
    if is_url(location):
        return str(location).rstrip("/").rsplit("/", 1)[0]
    return Path(location).parent
