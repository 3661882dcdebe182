"""Data sets that live behind an fsspec URL (s3://, gs://, memory://, file://, ...).

The loaders read standard on-disk layouts with ordinary file APIs (pickle, PIL, numpy). For a
remote `data.root` the tree is therefore copied into a local cache, keyed by the URL, and the
loaders read the copy. A copy counts as complete only once its marker exists, and the marker
records the remote tree's fingerprint (pipeline.source), so an interrupted download is redone,
never trusted, and a changed remote tree is fetched again.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from pipeline import locations
from pipeline.errors import DataError
from pipeline.layout import ROOT_CACHE
from pipeline.source import source_fingerprint

LOCAL_PROTOCOLS = {"file", "local"}


def local_root(root: str | None, cache: Path = ROOT_CACHE) -> str | None:
    """A local folder holding `root`'s tree: the folder itself, or a cached copy of a URL.

    The copy is keyed by the URL and checked against the remote tree's fingerprint
    (pipeline.source): a changed remote is fetched again, an unchanged one never."""
    if root is None or not locations.is_url(root):
        return root
    fs, path = locations.filesystem(root)  # names the package to install for a missing backend
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    if protocols & LOCAL_PROTOCOLS:
        return path
    with locations.reaching(root, "data.root "):
        if not fs.isdir(path):
            raise DataError(f"data.root {root}: no folder there")
        stamp = f"{root}\n{source_fingerprint(root)['digest']}"
    target = cache / hashlib.sha256(root.encode()).hexdigest()[:16]
    marker = target.with_suffix(".complete")
    if marker.is_file() and marker.read_text() == stamp:
        return str(target)
    partial = target.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    marker.unlink(missing_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    partial.mkdir(parents=True)
    with locations.reaching(root, "data.root "), locations.naming(partial):
        fs.get(path.rstrip("/") + "/", str(partial) + "/", recursive=True)
    partial.rename(target)
    marker.write_text(stamp)
    return str(target)
