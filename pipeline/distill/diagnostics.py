"""Per-epoch diagnostics of a method: numbers worth logging that are not losses.

A method adds a value per step (``add``, weighted by the batch size); the training loop takes
the epoch's weighted means once per epoch (``epoch_means``, summed over ranks under torchrun)
and logs them next to the losses, never adding them to the loss.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from pipeline import distributed


class Diagnostics:
    def __init__(self) -> None:
        self._sums: dict[str, Tensor] = {}
        self._weights: dict[str, float] = {}

    def add(self, name: str, value: Tensor, weight: float) -> None:
        """Accumulate `value` (a scalar tensor; kept on its device, no synchronisation)."""
        value = value.detach().double() * weight
        self._sums[name] = self._sums[name] + value if name in self._sums else value
        self._weights[name] = self._weights.get(name, 0.0) + weight

    def epoch_means(self) -> dict[str, float]:
        """The weighted mean of each name since the last call (over all ranks), then reset."""
        names = sorted(self._sums)
        if not names:  # the same on every rank (same method): no collective needed
            return {}
        totals = distributed.all_reduce_sum([self._sums[k].item() for k in names]
                                            + [self._weights[k] for k in names])
        self._sums, self._weights = {}, {}
        return {k: totals[i] / totals[len(names) + i] for i, k in enumerate(names)
                if totals[len(names) + i] > 0}


def map_share(part: Tensor, merged: Tensor) -> Tensor:
    """||part||_F / ||merged||_F (0 for an all-zero merged map)."""
    norm = torch.linalg.matrix_norm(merged)
    return torch.where(norm > 0, torch.linalg.matrix_norm(part) / norm.clamp_min(1e-30),
                       torch.zeros_like(norm))


def log_teacher2_share(diagnostics: Diagnostics, maps2: Sequence[Tensor],
                       merged: Sequence[Tensor], alpha: float) -> None:
    """Teacher 2's share of each group's merged map, ``||(1-alpha) M2||_F / ||alpha M1 +
    (1-alpha) M2||_F``, logged as ``share_g1``, ``share_g2``, ...: how much topology speaks."""
    for group, (m2, m) in enumerate(zip(maps2, merged), start=1):
        diagnostics.add(f"share_g{group}", map_share((1.0 - alpha) * m2, m), weight=m.shape[0])
