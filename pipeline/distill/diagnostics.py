"""Diagnostics of the two-teacher methods: numbers worth logging per epoch that are not losses.

tgd merges the teachers' raw maps before normalising them, so teacher 2's weight in the target
map is not alpha: it depends on the scale of its activations. ``log_teacher2_share`` reports,
per group, how much of the merged map teacher 2 makes up (``Method.diagnose``: logged per epoch
as ``<model>_share_g1``, ``..._g2``, ..., the batch-size-weighted mean, never summed into the
loss).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


def map_share(part: Tensor, merged: Tensor) -> Tensor:
    """||part||_F / ||merged||_F (0 for an all-zero merged map)."""
    norm = torch.linalg.matrix_norm(merged)
    return torch.where(norm > 0, torch.linalg.matrix_norm(part) / norm.clamp_min(1e-30),
                       torch.zeros_like(norm))


def log_teacher2_share(method, maps2: Sequence[Tensor], merged: Sequence[Tensor], alpha: float) -> None:
    """Teacher 2's share of each group's merged map, ``||(1-alpha) M2||_F / ||alpha M1 +
    (1-alpha) M2||_F``, as diagnostics ``share_g1``, ``share_g2``, ...: how much topology speaks."""
    with torch.no_grad():
        for group, (m2, m) in enumerate(zip(maps2, merged), start=1):
            method.diagnose(f"share_g{group}", map_share((1.0 - alpha) * m2, m))
