"""Resumable work outside a stage's DVC output, and publishing its result into place.

DVC deletes a stage's outputs before it runs, so work that must survive a kill is staged
elsewhere (data/.staging/<stage> locally, `<output>.staging` beside a URL output) and published
into the output only when complete. One mechanism for every stage (the topology stage: shards as
units; the teacher cache: epochs), for local paths and fsspec URLs alike (pipeline.locations):

- **Identity.** A staging folder carries a stamp file, `identity`, holding what its work depends
  on (a recipe's and its inputs' digest, say). `open_staging` resumes a folder whose stamp equals
  the identity asked for, and otherwise discards it (one printed line) and starts a new one. The
  stamp is written last, after the folders and whatever `prepare` creates, so a folder cut short
  while being set up is never resumed. A folder damaged by hand (a stamp of binary junk, empty
  or a folder; `done/` a file, a marker a folder; a folder missing) is discarded the same way,
  with one line saying what was wrong, and the work starts anew.
- **Done markers.** A unit of work counts as done only once its marker `done/<unit>` exists, and
  a marker is written atomically after the unit's data: a rename of a temporary file locally,
  one PUT (atomic per object) at a URL. A unit written halfway by a killed run has no marker.
- **Publishing.** `publish_store` assembles a finished zarr store at `<target>.partial` (hard
  links to the staged shard files, copies of the metadata files, zarr's own `*.partial`
  temporaries of a killed write left out), writes its attributes into the copy and renames it
  into place; with a URL on either side every file is copied through fsspec, the top-level
  zarr.json last. The staged store stays intact, so a kill while publishing costs only the
  publishing; `Staging.discard` removes the folder once everything is published.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import zarr

from pipeline import locations
from pipeline.store import jsonable

STAMP = "identity"  # the stamp file: the identity of the work in a staging folder
DONE = "done"       # the folder of done markers, one file per finished unit
TMP = ".tmp"        # a marker's temporary file locally (never counts as done)


def write_atomic(location: Path | str, text: str) -> None:
    """Write a small file atomically: a rename of a temporary file locally, one PUT at a URL."""
    if locations.is_url(location):
        locations.write_text(location, text)
        return
    location = Path(location)
    tmp = location.with_name(location.name + TMP)
    tmp.write_text(text)
    os.replace(tmp, location)


@dataclass(frozen=True)
class Staging:
    """A staging folder (a local path or a URL). Cheap and picklable: a worker process rebuilds
    it from its root (`Staging(root)`) to mark its units done. `resumed`: whether
    `open_staging` found earlier work of the same identity in it."""

    root: Path | str
    resumed: bool = field(default=False, compare=False)

    def path(self, *names: str) -> Path | str:
        """A location inside the folder."""
        return locations.join(self.root, *names)

    def mark_done(self, unit: str, text: str = "") -> None:
        """Mark `unit` done (atomically; call it after the unit's data is written)."""
        write_atomic(self.path(DONE, unit), text)

    def is_done(self, unit: str) -> bool:
        return locations.is_file(self.path(DONE, unit))

    def done_text(self, unit: str) -> str:
        """What `mark_done` wrote for `unit`."""
        return locations.read_text(self.path(DONE, unit))

    def done_units(self) -> list[str]:
        """The names of the finished units, sorted (a marker's temporary file does not count)."""
        if locations.is_url(self.root):
            names = locations.listdir(self.path(DONE))
        else:
            folder = Path(self.root, DONE)
            names = sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
        return [n for n in names if not n.endswith(TMP)]

    def discard(self) -> None:
        """Remove the folder and everything in it (if it is there)."""
        locations.rmtree(self.root)


def open_staging(root: Path | str, identity: str, print_fn: Callable[[str], None] = print,
                 folders: tuple[str, ...] = (), prepare: Callable[[Staging], None] | None = None,
                 shown: Path | str | None = None) -> Staging:
    """The staging folder at `root` for work of `identity`: resumed (`.resumed`) when its stamp
    is `identity`, else discarded with one printed line and made anew: `done/`, each of
    `folders`, then `prepare(staging)` (stores the work writes into), the stamp last.
    `shown` is how messages name the folder (default `root`)."""
    stamp = locations.join(root, STAMP)
    present = [DONE, *folders]
    why = _not_resumable(root, identity, present)
    if why is None:
        return Staging(root, resumed=True)
    if locations.exists(root):
        print_fn(f"discarding {shown or root}: {why}")
        locations.rmtree(root)
    for folder in present:
        locations.makedirs(locations.join(root, folder))
    staging = Staging(root)
    if prepare is not None:
        prepare(staging)
    write_atomic(stamp, identity + "\n")  # last: a staging folder without it is never resumed
    return staging


def _not_resumable(root: Path | str, identity: str, present: list[str]) -> str | None:
    """Why the folder at `root` cannot be resumed for `identity` (None: it can)."""
    stamp = locations.join(root, STAMP)
    try:
        found = locations.read_text(stamp).strip() if locations.is_file(stamp) else None
    except (OSError, UnicodeDecodeError):  # unreadable, or binary junk
        found = None
    if found is None or not found:
        return (f"its stamp ({STAMP}) is missing or unreadable (a run cut short while setting it up, "
                "or a damaged file)")
    if found != identity:
        return "it holds work for another recipe or input"
    if locations.is_url(root):  # an object store has no folders to check
        return None
    missing = [f for f in present if not Path(root, f).is_dir()]
    if missing:
        return f"its folder {missing[0]}/ is missing or not a folder"
    odd = sorted(p.name for p in Path(root, DONE).iterdir() if not p.is_file())
    return f"its done marker {DONE}/{odd[0]} is not a file" if odd else None


def publish_store(staged: Path | str, target: Path | str, attrs: dict[str, Any] | None = None) -> None:
    """Put a copy of the finished zarr store `staged` at `target` (replacing what is there), with
    `attrs` added to its group's attributes, without consuming the staged store.

    Locally: assembled in `<target>.partial` - shard files hard-linked (zarr replaces files by
    rename, never rewrites them in place; copied where linking fails), metadata files copied,
    because the attributes are then written into the copy only - then renamed into place.
    With a URL on either side every file is copied through fsspec, the top-level zarr.json last.
    """
    if locations.is_url(staged) or locations.is_url(target):
        _publish_url(staged, target, attrs)
        return
    staged, target = Path(staged), Path(target)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    for directory, _, files in os.walk(staged):
        folder = partial / Path(directory).relative_to(staged)
        folder.mkdir(parents=True, exist_ok=True)
        for name in files:
            if name.endswith(".partial"):  # zarr's temporary file of a write that was killed
                continue
            source = os.path.join(directory, name)
            if name == "zarr.json":
                shutil.copyfile(source, folder / name)
            else:
                _link_or_copy(source, str(folder / name))
    if attrs:
        zarr.open_group(str(partial), mode="r+", zarr_format=3).attrs.update(jsonable(attrs))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not supported
        shutil.copy2(source, target)


def _publish_url(staged: Path | str, target: Path | str, attrs: dict[str, Any] | None) -> None:
    partial = str(target).rstrip("/") + ".partial"
    locations.rmtree(partial)
    locations.copytree(staged, partial, skip_suffix=".partial")  # zarr's temporaries of a killed write
    if attrs:
        group = zarr.open_group(locations.zarr_store(partial), mode="r+", zarr_format=3)
        group.attrs.update(jsonable(attrs))
    if locations.is_url(target):
        locations.rmtree(str(target))
        locations.move(partial, str(target))
    else:
        shutil.rmtree(target, ignore_errors=True)
        os.replace(partial, target)
