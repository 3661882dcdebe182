"""What figure titles and summaries say: a data set's display name and counted nouns.

`data.name` names a loader, not a data set: `imagefolder` reads CIFAR-10's JPEG tree as well as
any other class-folder tree, so titles name the data set from `data.name` and `data.root`
(`dataset_title`). A leaf module (the standard library only), so that every stage that draws
can import it without loading anything else.
"""
from __future__ import annotations

import re
import textwrap

# data.name -> the data set's name as its authors write it (digits: the 8x8 set of scikit-learn)
DISPLAY_NAMES = {
    "cifar10": "CIFAR-10",
    "cinic10": "CINIC-10",
    "tinyimagenet": "Tiny ImageNet",
    "basicmotions": "BasicMotions",
    "pamap2": "PAMAP2",
    "digits": "digits (scikit-learn)",
}
# loaders of any folder: the data set is named by the folder (data.root)
FOLDER_LOADERS = ("imagefolder", "windows")
# a folder name recognised as a known data set (imagefolder: e.g. CIFAR-10 written out as JPEGs)
KNOWN_FOLDERS = ((re.compile(r"cifar[-_ ]?10(?!\d)", re.IGNORECASE), "CIFAR-10"),
                 (re.compile(r"cinic", re.IGNORECASE), "CINIC-10"))


def folder_name(root: str | None) -> str | None:
    """The last component of a folder path or fsspec URL (`s3://bucket/cifar10/` -> `cifar10`)."""
    if not root:
        return None
    name = root.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return None if name in ("", ".", "..") or name.endswith(":") else name


def dataset_title(name: str, root: str | None = None) -> str:
    """The display name of the data set `data.name` reads from `data.root`: a fixed name per
    data set; for `imagefolder` the data set its folder's name says (cifar10 / cifar-10, cinic),
    else that folder's name; for `windows` the folder's name; `data.name` itself otherwise."""
    if name in DISPLAY_NAMES:
        return DISPLAY_NAMES[name]
    folder = folder_name(root) if name in FOLDER_LOADERS else None
    if folder is None:
        return name
    if name == "imagefolder":
        for pattern, known in KNOWN_FOLDERS:
            if pattern.search(folder):
                return known
    return folder


def count(n: int, noun: str, plural: str | None = None) -> str:
    """`1 epoch`, `2 epochs`, `1 class`, `3 classes`; `plural` where adding -s (-es after an s)
    is wrong (`count(2, "batch", "batches")`)."""
    if n == 1:
        return f"1 {noun}"
    if plural is None:
        plural = noun + ("es" if noun.endswith("s") else "s")
    return f"{n} {plural}"


def wrap_title(text: str, width_inches: float, fontsize: float) -> str:
    """`text` broken into lines that fit `width_inches` at `fontsize` points (each line of the
    text wrapped on its own, at spaces (a no-break space holds words together); an average
    character of matplotlib's DejaVu Sans is taken as 0.58 em wide, a little wider than it is, so
    that lines err on the short side)."""
    columns = max(20, int(width_inches * 72 / (0.58 * fontsize)))
    return "\n".join(textwrap.fill(line, columns) for line in text.split("\n"))
