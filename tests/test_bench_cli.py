"""`python -m benchmarks`: every subcommand listed and reachable with the flags the docs use,
missing data as one line and status 2, and the CIFAR-10 readers (tarball and unpacked tree)."""
import subprocess
import sys

import numpy as np
import pytest

from benchmarks.__main__ import HANDLERS, build_parser, main
from benchmarks.data import load_folder_test_images
from conftest import REPO, subprocess_env
from tests.cifar_fixtures import load_cifar_test_images, write_cifar_tarball, write_cifar_tree

SUBCOMMANDS = ["topology", "topology-floor", "topology-signals", "topology-backends", "topology-codecs",
               "topology-stage", "ddp", "train", "layout"]


def test_help_lists_every_subcommand():
    assert sorted(HANDLERS) == sorted(SUBCOMMANDS)
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--help"], cwd=REPO, capture_output=True,
                          text=True, env=subprocess_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    listed = done.stdout.split("positional arguments:")[1]
    for name in SUBCOMMANDS:
        assert f"\n    {name} " in listed or f"\n    {name}\n" in listed, name


@pytest.mark.parametrize("argv", [   # command lines quoted in README.md and docs/*.md
    ["topology", "--n", "200", "--filtration", "cubical", "--repeat", "3"],
    ["topology", "--tar", "x.tar.gz"],
    ["topology-floor", "--prepared", "data/prepared"],
    ["topology-signals", "--repeat", "1"],
    ["topology-backends", "--n", "2000", "--workers", "2", "--shard-size", "64", "--engine", "ripser"],
    ["topology-codecs", "--n", "4096", "--root", "data/raw/cifar10-jpeg"],
    ["topology-stage", "--root", "data/raw/cifar10-jpeg", "--workers", "2", "--repeat", "3", "--dtype", "float16",
     "--limit-train", "10", "--limit-test", "5"],
    ["ddp", "--arch", "wrn10_1", "--channels", "1", "--processes", "1", "2", "--steps", "5", "--batch", "32"],
    ["train", "--threads", "1", "2", "--repeat", "3", "--config", "default"],
    ["train", "--device", "cuda", "--amp", "--n", "2048", "--repeat", "2"],
    ["layout", "--n", "192", "--repeat", "5", "--threads", "2", "--batch", "64"],
])
def test_documented_command_lines_parse(argv):
    args = build_parser().parse_args(argv)
    assert args.command == argv[0] and args.command in HANDLERS


def test_missing_data_is_one_line_and_status_2(tmp_path, capsys):
    assert main(["topology", "--n", "2", "--tar", str(tmp_path / "none.tar.gz")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: --tar {tmp_path / 'none.tar.gz'}: no such file"]
    assert main(["topology-stage", "--root", str(tmp_path)]) == 2
    assert "no train/ folder" in capsys.readouterr().err
    write_cifar_tree(tmp_path / "tree", 1, 1)
    assert main(["topology-floor", "--n", "5", "--root", str(tmp_path / "tree")]) == 2
    assert "holds only 2 JPEGs in class folders, 5 asked" in capsys.readouterr().err


def test_the_tarball_and_the_tree_give_the_same_images_in_the_same_order(tmp_path):
    tree = write_cifar_tree(tmp_path / "tree", train_per_class=1, test_per_class=3)
    tar = write_cifar_tarball(tmp_path / "cifar10-jpeg.tar.gz", tree)
    from_tar, from_tree = load_cifar_test_images(6, tar), load_folder_test_images(6, tree)
    assert from_tar.shape == (6, 32, 32, 3) and from_tar.dtype == np.uint8
    np.testing.assert_array_equal(from_tar, from_tree)
    assert len({image.tobytes() for image in from_tar}) == 6   # test/ only, each image once
