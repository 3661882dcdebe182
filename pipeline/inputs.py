"""Training inputs, preloaded from the zarr stores into tensors (no per-sample Python decoding).

Raw inputs stay compact in memory (uint8 images) and become normalised float tensors batch by
batch on the training device: `to_unit` puts them channels-first on [0, 1], `Normalizer` applies
the training split's per-channel mean and std recorded by the prepare and topology stages.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pipeline.errors import DataError
from pipeline.store import SPLITS, read_split, split_path


def to_unit(x: Tensor) -> Tensor:
    """Raw samples -> float channels-first on [0, 1]: images (N,H,W,C) uint8, signals (N,L,C)."""
    if x.dtype == torch.uint8:
        return x.permute(0, 3, 1, 2).float().div_(255.0)
    return x.transpose(1, 2).float()


class Normalizer:
    """(x - mean) / std per channel (axis 1), with statistics of the training split."""

    def __init__(self, mean: list[float], std: list[float]):
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)

    def __call__(self, x: Tensor) -> Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return (x - self.mean.to(x.device).view(shape)) / self.std.to(x.device).view(shape)


@dataclass
class Inputs:
    """Both splits of a run's inputs: tensors per split and what the models need to know."""

    splits: dict[str, dict[str, Tensor]]
    classes: list[str]
    modality: str
    normalizers: dict[str, Normalizer] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # per key, channels-first

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def model_input(self, key: str, batch: Tensor) -> Tensor:
        """What a model that reads `key` sees for a batch of stored values."""
        unit = to_unit(batch) if key == "x" else batch
        return self.normalizers[key](unit)

    def to(self, device: torch.device) -> "Inputs":
        for tensors in self.splits.values():
            for key in tensors:
                tensors[key] = tensors[key].to(device)
        return self


def load_inputs(prepared_dir: str | Path | None = None, topology_dir: str | Path | None = None) -> Inputs:
    """Raw inputs ("x") from the prepared stores and/or persistence images ("pi") from topology."""
    splits: dict[str, dict[str, Tensor]] = {s: {} for s in SPLITS}
    normalizers, shapes, attrs = {}, {}, {}
    for key, directory, array in (("x", prepared_dir, "x"), ("pi", topology_dir, "pis")):
        if directory is None:
            continue
        for split in SPLITS:
            arrays, attrs = read_split(split_path(directory, split), [array, "y"])
            splits[split][key] = torch.from_numpy(np.ascontiguousarray(arrays[array]))
            labels = torch.from_numpy(arrays["y"].astype(np.int64))
            if "y" in splits[split] and not torch.equal(splits[split]["y"], labels):
                raise DataError(f"{directory}/{split}: labels differ from the prepared store's; "
                                 "re-run the topology stage")
            splits[split]["y"] = labels
        normalizers[key] = Normalizer(attrs["mean"], attrs["std"])
        sample = splits["train"][key][:1]
        shapes[key] = tuple(to_unit(sample).shape[1:]) if key == "x" else tuple(sample.shape[1:])
    return Inputs(splits=splits, classes=list(attrs["classes"]), modality=attrs["modality"],
                  normalizers=normalizers, shapes=shapes)


def describe(inputs: Inputs) -> dict[str, Any]:
    return {"classes": inputs.num_classes, "modality": inputs.modality,
            "n": {s: int(len(t["y"])) for s, t in inputs.splits.items()},
            "shapes": {k: list(v) for k, v in inputs.shapes.items()}}
