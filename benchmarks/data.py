"""What the benchmarks run on: the CIFAR-10 JPEG readers (the shared tarball or its unpacked
tree), the pipeline's digits images, and random CIFAR-shaped training inputs (`make_inputs`) for
the training-loop and layout benchmarks. Everything heavy (PIL, torch) is imported on use."""
from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# The documented data locations, relative to the repository (README.md, docs/results.md): the
# shared tarball, and the tree unpacked from it into the git-ignored data/raw/.
CIFAR_TAR_RELATIVE = "../shared/datasets/cifar10-jpeg.tar.gz"
CIFAR_ROOT_RELATIVE = "data/raw/cifar10-jpeg"
DEFAULT_CIFAR_TAR = REPO / CIFAR_TAR_RELATIVE


class BenchDataMissing(Exception):
    """The benchmark's data is not where it was asked for or documented: one line for the user."""


def _rgb(source) -> np.ndarray:
    from PIL import Image

    with Image.open(source) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def load_cifar_test_images(n: int, path: str | Path = DEFAULT_CIFAR_TAR) -> np.ndarray:
    """The first n CIFAR-10 test JPEGs (sorted member names under */test/) as uint8 (n, 32, 32, 3),
    read straight from the tar.gz (no unpacking)."""
    path = Path(path)
    with tarfile.open(path, "r:*") as tar:
        members = sorted((m for m in tar.getmembers()
                          if m.isfile() and "/test/" in f"/{m.name}" and m.name.lower().endswith(".jpg")),
                         key=lambda m: m.name)[:n]
        out = [_rgb(io.BytesIO(tar.extractfile(m).read())) for m in members]
    if len(out) < n:
        raise BenchDataMissing(f"{path} holds only {len(out)} test JPEGs, {n} asked")
    return np.stack(out)


def load_folder_test_images(n: int, root: str | Path) -> np.ndarray:
    """The same images from the unpacked tree: the first n of root/test/<class>/*.jpg by path."""
    files = sorted(Path(root, "test").glob("*/*.jpg"), key=lambda p: p.relative_to(root).as_posix())[:n]
    if len(files) < n:
        raise BenchDataMissing(f"{Path(root, 'test')} holds only {len(files)} JPEGs in class folders, {n} asked")
    return np.stack([_rgb(file) for file in files])


def load_digits_images(n: int) -> np.ndarray:
    """The first n training images of the pipeline's own `digits` data set (uint8, 32x32x1)."""
    from pipeline.data import load_dataset

    return load_dataset({"name": "digits", "split_seed": 0, "test_fraction": 0.2}).splits["train"].x[:n]


def cifar_source(tar: str | None, root: str | None) -> tuple[str, Path]:
    """("tar" | "root", path) of the CIFAR-10 JPEGs: --root, --tar, or the documented tarball."""
    if root:
        if not Path(root, "test").is_dir():
            raise BenchDataMissing(f"--root {root}: no test/ folder there (expected the cifar10-jpeg tree: "
                                   "train/<class>/*.jpg, test/<class>/*.jpg)")
        return "root", Path(root)
    if tar:
        if not Path(tar).is_file():
            raise BenchDataMissing(f"--tar {tar}: no such file")
        return "tar", Path(tar)
    if DEFAULT_CIFAR_TAR.is_file():
        return "tar", DEFAULT_CIFAR_TAR
    raise BenchDataMissing(f"the CIFAR-10 JPEGs are not at {CIFAR_TAR_RELATIVE} (relative to the repository): "
                           "pass --tar PATH/cifar10-jpeg.tar.gz or --root PATH/cifar10-jpeg")


def bench_images(n: int, tar: str | None = None, root: str | None = None) -> tuple[np.ndarray, str]:
    """The first n CIFAR-10 test images and a description that names where they came from as given
    (the documented relative location when defaulted), never as this machine's absolute path."""
    kind, path = cifar_source(tar, root)
    shown = (root or tar) if (root or tar) else CIFAR_TAR_RELATIVE
    images = load_folder_test_images(n, path) if kind == "root" else load_cifar_test_images(n, path)
    return images, f"CIFAR-10 test, first {n} JPEGs of {shown}"


# ------------------------------------------------------------ random inputs for the training loop
@dataclass(frozen=True)
class Config:
    teacher: str
    student: str
    image: tuple[int, int, int]   # channels, height, width
    pi: tuple[int, int, int]      # channels, resolution, resolution
    classes: int = 10


CONFIGS = {
    # the paper's sizes: WRN-16-3 teachers, WRN-16-1 student, CIFAR-10 images, 2 x 3 PIs of 50x50
    "paper": Config("wrn16_3", "wrn16_1", (3, 32, 32), (6, 50, 50)),
    # params.yaml's defaults on digits: WRN-16-1 teachers, WRN-10-1 student, 1 channel
    "default": Config("wrn16_1", "wrn10_1", (1, 32, 32), (2, 50, 50)),
}


def train_params(batch: int, device=None, amp: bool = False):
    """params.yaml's train section for one epoch of `batch`-sized batches on `device` (default
    the CPU), bf16 autocast when `amp` (threads: the benchmark sets them)."""
    from pipeline.schema import read_yaml
    from pipeline.training.params import TrainParams

    train = read_yaml(REPO / "params.yaml")["train"]
    return TrainParams.model_validate({**train, "epochs": 1, "batch_size": batch, "threads": 0,
                                       "device": device.type if device is not None else "cpu",
                                       "nproc": 1, "amp": amp})


def make_inputs(config: Config, n: int, seed: int = 0):
    """Random uint8 images (N, H, W, C), non-negative PIs (N, K, R, R), labels; 1 test sample.
    PIs in the layout the stages use (train.channels_last's default), for both loops."""
    import torch

    from pipeline.inputs import Inputs, Normalizer
    from pipeline.runtime import prepare_inputs

    g = torch.Generator().manual_seed(seed)
    c, h, w = config.image
    k, r, _ = config.pi

    def split(m: int) -> dict[str, torch.Tensor]:
        return {"x": torch.randint(0, 256, (m, h, w, c), dtype=torch.uint8, generator=g),
                "pi": torch.rand(m, k, r, r, generator=g) ** 4,
                "y": torch.randint(0, config.classes, (m,), generator=g)}

    inputs = Inputs(splits={"train": split(n), "test": split(1)},
                    classes=[str(i) for i in range(config.classes)], modality="image",
                    normalizers={"x": Normalizer([0.5] * c, [0.25] * c), "pi": Normalizer([0.05] * k, [0.1] * k)},
                    shapes={"x": (c, h, w), "pi": (k, r, r)})
    return prepare_inputs(inputs, train_params(1))
