"""Data sets that live behind an fsspec URL (s3://, gs://, memory://, file://, ...).

The loaders read standard on-disk layouts with ordinary file APIs (pickle, PIL, numpy). For a
remote `data.root` the tree is therefore copied once into a local cache, keyed by the URL, and
the loaders read the copy. A copy counts as complete only once its marker exists, so an
interrupted download is redone, never trusted.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import fsspec

from pipeline import layout
from pipeline.errors import DataError
from pipeline.locations import is_url

CACHE = layout.ROOT_CACHE
LOCAL_PROTOCOLS = {"file", "local"}


def local_root(root: str | None, cache: Path = CACHE) -> str | None:
    """A local folder holding `root`'s tree: the folder itself, or a cached copy of a URL."""
    if root is None or not is_url(root):
        return root
    fs, path = fsspec.core.url_to_fs(root)
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    if protocols & LOCAL_PROTOCOLS:
        return path
    if not fs.exists(path):
        raise DataError(f"data.root {root}: nothing there")
    target = cache / hashlib.sha256(root.encode()).hexdigest()[:16]
    marker = target.with_suffix(".complete")
    if marker.is_file() and marker.read_text() == root:
        return str(target)
    partial = target.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    partial.mkdir(parents=True)
    fs.get(path.rstrip("/") + "/", str(partial) + "/", recursive=True)
    partial.rename(target)
    marker.write_text(root)
    return str(target)
