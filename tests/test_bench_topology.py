"""The topology benchmarks on tiny inputs (a CIFAR-format JPEG tree built here, never the real
data set): each runs, prints its figures, and the engines it compares agree."""
import re

import numpy as np
import pytest

from benchmarks.__main__ import main
from tests.cifar_fixtures import tiny_images, write_cifar_tarball, write_cifar_tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """6 test and 4 training JPEGs in two classes."""
    return write_cifar_tree(tmp_path_factory.mktemp("cifar") / "cifar10-jpeg", train_per_class=2, test_per_class=3)


def run(capsys, argv: list[str]) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out


def number(pattern: str, out: str) -> float:
    found = re.search(pattern, out)
    assert found, f"no line matches {pattern!r} in:\n{out}"
    return float(found.group(1))


@pytest.mark.parametrize("filtration", ["sequence", "cubical"])
def test_topology_engines_agree_and_the_ratio_is_printed(tree, tmp_path, capsys, filtration):
    tar = write_cifar_tarball(tmp_path / "cifar10-jpeg.tar.gz", tree)
    out = run(capsys, ["topology", "--n", "3", "--tar", str(tar), "--repeat", "1", "--filtration", filtration])
    assert f"filtration {filtration}: CIFAR-10 test, first 3 JPEGs of {tar}; 3 images x 6 PIs (50x50)" in out
    assert number(r"speed-up ripser/fast: (\d+)x", out) >= 0
    assert number(r"max \|ripser - fast\| over all PIs: (\S+)", out) < 1e-5
    for engine in ("ripser", "fast"):
        assert number(rf"\n  {engine} +([0-9.]+) ", out) > 0


def test_topology_floor_counts_every_pi_of_a_prepared_store_and_of_images(tree, tmp_path, capsys):
    from pipeline.store import SPLITS, split_path, write_split
    from pipeline.topology import IMAGE_RECIPE

    from benchmarks.topology_engines import floor_counts

    attrs = {"dataset": "bench", "modality": "image", "classes": ["0"], "mean": [0.0], "std": [1.0]}
    splits = {split: tiny_images(5 - 2 * i, seed=i) for i, split in enumerate(SPLITS)}   # 5 + 3 images
    for split, images in splits.items():
        write_split(split_path(tmp_path / "prepared", split), {"x": images, "y": np.zeros(len(images), np.int64)},
                    attrs, 2)
    out = run(capsys, ["topology-floor", "--prepared", str(tmp_path / "prepared")])
    assert f"{tmp_path / 'prepared'} (5 + 3 images)" in out
    for filtration in ("sequence", "cubical"):
        recipe = {**IMAGE_RECIPE, "filtrations": [filtration]}
        expected = [floor_counts(images, recipe) for images in splits.values()]
        assert number(rf"{filtration} +\d+ of (\d+) PIs", out) == 8 * 6 == sum(total for _, total in expected)
        assert number(rf"{filtration} +(\d+) of", out) == sum(floored for floored, _ in expected)
    out = run(capsys, ["topology-floor", "--n", "4", "--root", str(tree)])
    assert number(r"sequence +\d+ of (\d+) PIs", out) == 4 * 6


def test_topology_signals_engines_agree_on_basicmotions(capsys):
    pytest.importorskip("aeon")
    out = run(capsys, ["topology-signals", "--repeat", "1"])
    assert "basicmotions, 80 windows" in out
    assert number(r"speed-up ripser/fast: (\d+)x", out) >= 0
    assert number(r"max \|ripser - fast\| over all PIs: (\S+)", out) < 1e-5


def test_topology_codecs_prints_every_codec_and_dtype(tree, capsys):
    out = run(capsys, ["topology-codecs", "--n", "4", "--root", str(tree), "--repeat", "1"])
    rows = [line.split() for line in out.splitlines() if line.startswith("  float")]
    assert [(row[0], row[1], row[2]) for row in rows] == [
        (dtype, codec, chunk) for dtype in ("float32", "float16")
        for codec, chunk in (("none", "4"), ("none", "256"), ("lz4", "256"), ("zstd", "256"))]
    sizes = {(row[0], row[1], row[2]): float(row[-1]) for row in rows}   # stored bytes / raw bytes
    assert 0.9 < sizes[("float32", "none", "4")] < 1.2
    assert all(float(row[5]) >= 0 for row in rows)   # write/compute ratios parse


def test_topology_backends_give_byte_identical_outputs(tree, capsys):
    out = run(capsys, ["topology-backends", "--n", "4", "--root", str(tree), "--workers", "1"])
    assert "the same 4 images as train and as test (8 samples)" in out
    assert "outputs byte-identical: True" in out
    assert number(r"dask / loky \(stage\): ([0-9.]+)x", out) > 0
