"""Each epoch's batches: the seeded order and the batch builder, in one place.

Epoch e draws ``torch.randperm(n, generator=epoch_generator(seed, e))`` and cuts it into
``batch_size`` slices; augmentation (random crop and flip, images only) draws from the same
generator after the permutation. The training loop and the teacher cache both build their
batches here, so a cached teacher output belongs to exactly the batch the loop trains on.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn

from pipeline.inputs import Inputs, to_unit
from pipeline.runtime import epoch_generator

# the teacher cache's feed: (epoch, step, index) -> the batch's stored teacher outputs
TeacherFeed = Callable[[int, int, Tensor], Any]


def augment_images(x: Tensor, generator: torch.Generator, pad: int = 4) -> Tensor:
    """Random crop (zero padding `pad`) and horizontal flip of a channels-first image batch."""
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
    flip = torch.rand(n, generator=generator) < 0.5
    out = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    out[flip] = out[flip].flip(-1)
    return out


def _order(seed: int, epoch: int, n: int) -> tuple[Tensor, torch.Generator]:
    generator = epoch_generator(seed, epoch)
    return torch.randperm(n, generator=generator), generator


def epoch_order(seed: int, epoch: int, n: int) -> Tensor:
    """The permutation of the `n` training samples that epoch `epoch` trains in."""
    return _order(seed, epoch, n)[0]


def make_batch(inputs: Inputs, split: str, index: Tensor, keys: tuple[str, ...],
               augment: Callable[[Tensor], Tensor] | None = None) -> dict[str, Tensor]:
    """Labels, sample indices (`index`, positions in the split) and the inputs `keys`."""
    tensors = inputs.splits[split]
    batch = {"y": tensors["y"][index], "index": index}
    for key in keys:
        if key == "x" and augment is not None:
            batch["x"] = inputs.normalizers["x"](augment(to_unit(tensors["x"][index])))
        else:
            batch[key] = inputs.model_input(key, tensors[key][index])
    return batch


def epoch_batches(inputs: Inputs, seed: int, epoch: int, batch_size: int, keys: tuple[str, ...],
                  augment: bool = False, feed: TeacherFeed | None = None) -> Iterator[dict[str, Any]]:
    """The epoch's global batches, in the order of its seeded permutation (the same on every
    rank), augmented when asked (images only); with a teacher `feed`, each batch carries its
    stored teacher outputs in ``batch["teachers"]``."""
    n = len(inputs.splits["train"]["y"])
    order, generator = _order(seed, epoch, n)
    do_augment = augment and inputs.modality == "image"
    augmenter = (lambda x: augment_images(x, generator)) if do_augment else None  # noqa: E731
    for step, start in enumerate(range(0, n, batch_size)):
        batch = make_batch(inputs, "train", order[start:start + batch_size], keys, augmenter)
        if feed is not None:  # the teachers' outputs stored for this very batch
            batch["teachers"] = feed(epoch, step, batch["index"])
        yield batch
