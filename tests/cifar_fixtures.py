"""CIFAR-10-format test data in one place: the real tarball's location and readers (for tests that
skip without it), and tiny stand-ins built by the tests - a JPEG tree laid out as
cifar10-jpeg/{train,test}/<class>/*.jpg, and the same tree as a tar.gz."""
from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.data import DEFAULT_CIFAR_TAR as CIFAR_TAR  # <repo>/../shared/datasets/cifar10-jpeg.tar.gz
from benchmarks.data import load_cifar_test_images, load_digits_images

__all__ = ["CIFAR_TAR", "load_cifar_test_images", "load_digits_images", "tiny_images", "write_cifar_tree",
           "write_cifar_tarball"]


def tiny_images(n: int, seed: int = 0) -> np.ndarray:
    """n smooth random RGB images, uint8 (n, 32, 32, 3): 4 x 4 blocks of colour with a little noise,
    so that their persistence diagrams hold a few points, as photographs' do."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (n, 4, 4, 3)).repeat(8, axis=1).repeat(8, axis=2)
    return np.clip(coarse + rng.normal(0, 1, coarse.shape), 0, 255).astype(np.uint8)


def write_cifar_tree(root: Path, train_per_class: int = 2, test_per_class: int = 2,
                     classes: tuple[str, ...] = ("cat", "dog"), seed: int = 0) -> Path:
    """root/{train,test}/<class>/<i>.jpg (JPEG, as the real tree); returns root."""
    for s, (split, per_class) in enumerate((("train", train_per_class), ("test", test_per_class))):
        for c, label in enumerate(classes):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i, image in enumerate(tiny_images(per_class, seed=seed + 100 * s + c)):
                Image.fromarray(image).save(folder / f"{i:04d}.jpg", quality=95)
    return root


def write_cifar_tarball(path: Path, tree: Path) -> Path:
    """The tree as a tar.gz whose members read cifar10-jpeg/<split>/<class>/<i>.jpg; returns path."""
    with tarfile.open(path, "w:gz") as tar:
        tar.add(tree, arcname="cifar10-jpeg")
    return path
