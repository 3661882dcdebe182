"""No tracked file (code, docs, outputs quoted in docs) names a folder of a development machine:
data lives at paths relative to the repository (data/raw/..., ../shared/datasets/...)."""
import re
import shutil
import subprocess

import pytest

from conftest import REPO

# An absolute path into a home, scratch or temporary folder; a relative path such as
# `data/raw/cifar10-jpeg` or `../shared/datasets/...` never matches (no leading `/` after a
# word character, dot or slash).
MACHINE_PATH = re.compile(r"(?<![\w.~/-])/(?:" + "|".join(["work", "root", "home", "tmp", "Users", "mnt", "scratch"])
                          + r")/[\w.-]")


def _tracked_files() -> list[str]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: no list of tracked files")
    done = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
    return [name for name in done.stdout.decode().split("\0") if name]


def test_the_pattern_finds_machine_paths_and_spares_relative_ones():
    assert MACHINE_PATH.search("unpacked to " + "/" + "tmp/cifar")
    assert MACHINE_PATH.search("JPEGs of " + "/" + "work/shared/datasets/cifar10-jpeg.tar.gz;")
    assert not MACHINE_PATH.search("tar -xzf ../shared/datasets/cifar10-jpeg.tar.gz -C data/raw")
    assert not MACHINE_PATH.search("data.root=data/raw/cifar10-jpeg, https://example.org/home/x")


def test_no_tracked_file_names_a_machine_path():
    found = []
    for name in _tracked_files():
        path = REPO / name
        if not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:  # binary
            continue
        for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            if MACHINE_PATH.search(line):
                found.append(f"{name}:{number}: {line.strip()[:120]}")
    assert not found, "absolute machine paths in tracked files:\n" + "\n".join(found)
