"""Pure loss functions shared by the distillation methods (no parameters, no state).

Notation: a group output ``f`` of any shape (B, ...) is flattened to F (B x D); its batch
similarity map is G = F F^T (B x B), which compares directly between networks whose feature maps
differ in channels or spatial size (a 1-D signal network vs a 2-D persistence-image network, a
32x32 vs a 50x50 input).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

KL_REDUCTIONS = ("batchmean", "mean")
cross_entropy = F.cross_entropy  # the methods name their arithmetic here (pipeline.distill.base)


def kd_kl(zs: Tensor, zt: Tensor, temperature: float, reduction: str = "batchmean") -> Tensor:
    """KL(softmax(zt/T) || softmax(zs/T)) for student logits ``zs`` and teacher logits ``zt``.

    ``reduction``: "batchmean" sums over classes and averages over the batch (the textbook KL);
    "mean" averages over batch AND classes, i.e. batchmean / num_classes (what the authors' code
    got from ``nn.KLDivLoss()``). The T^2 factor is NOT applied here; the methods apply it.
    """
    if reduction not in KL_REDUCTIONS:
        raise ValueError(f"kl reduction must be one of {KL_REDUCTIONS}, got {reduction!r}")
    log_ps = F.log_softmax(zs / temperature, dim=1)
    log_pt = F.log_softmax(zt / temperature, dim=1)
    total = F.kl_div(log_ps, log_pt, reduction="sum", log_target=True)
    # explicit divisors: torch warns that its own "mean" will change meaning in a future release
    return total / (zs.shape[0] if reduction == "batchmean" else zs.numel())


def flatten(f: Tensor) -> Tensor:
    """(B, ...) -> (B, D), the features in memory order: a view, not a copy, for channels-last
    maps. G and the correlation map sum over the features, so their order does not matter."""
    if f.dim() == 4 and not f.is_contiguous() and f.is_contiguous(memory_format=torch.channels_last):
        f = f.permute(0, 2, 3, 1)
    return f.reshape(f.shape[0], -1)


def similarity_map(f: Tensor) -> Tensor:
    """Raw batch similarity map G = F F^T (B x B) of one group output."""
    x = flatten(f)
    return x @ x.t()


def similarity_maps(feats: Sequence[Tensor]) -> list[Tensor]:
    """G for each group output in ``feats``."""
    return [similarity_map(f) for f in feats]


def rownorm(g: Tensor, eps: float = 1e-12) -> Tensor:
    """L2-normalise each row (F.normalize(g, p=2, dim=1), as in SP and TGD)."""
    return F.normalize(g, p=2, dim=1, eps=eps)


def map_distance(gs: Tensor, gt: Tensor) -> Tensor:
    """mean((rownorm(gs) - rownorm(gt))^2) = ||rownorm(gs) - rownorm(gt)||_F^2 / B^2."""
    return F.mse_loss(rownorm(gs), rownorm(gt))


def sp_loss(gs_list: Sequence[Tensor], gt_list: Sequence[Tensor]) -> Tensor:
    """Similarity-preserving loss (Tung & Mori 2019), summed over groups:
    sum_l mean((rownorm(Gs_l) - rownorm(Gt_l))^2), given the RAW maps (see similarity_maps)."""
    _check_pairs(gs_list, gt_list)
    return sum(map_distance(gs, gt) for gs, gt in zip(gs_list, gt_list))


def merge_maps(g1_list: Sequence[Tensor], g2_list: Sequence[Tensor], alpha: float) -> list[Tensor]:
    """alpha * G1 + (1 - alpha) * G2 per group (maps of the same batch, B x B each)."""
    _check_pairs(g1_list, g2_list)
    return [alpha * g1 + (1.0 - alpha) * g2 for g1, g2 in zip(g1_list, g2_list)]


def merged_similarity_loss(fs: Sequence[Tensor], f1: Sequence[Tensor], f2: Sequence[Tensor],
                           alpha: float) -> Tensor:
    """TGD's similarity term (without gamma):
    sum_l mean((rownorm(Gs_l) - rownorm(alpha G1_l + (1 - alpha) G2_l))^2), where the teachers'
    RAW maps are merged first and the merged map is row-normalised afterwards."""
    gs = similarity_maps(fs)
    gt = merge_maps(similarity_maps(f1), similarity_maps(f2), alpha)
    return sp_loss(gs, gt)


def correlation_map(f: Tensor, eps: float = 1e-8) -> Tensor:
    """Batch correlation map C (B x B): cosine similarity of the batch-centred features,
    C_ij = <z_i, z_j> / (|z_i| |z_j|) with z_i = F_i - mean_b F_b. Entries in [-1, 1], unit
    diagonal (0 for an all-zero centred row); C_ij = 0 means samples i and j are represented by
    orthogonal (uncorrelated) features. Invariant to any orthogonal transform of the feature
    space and to the scale of the features."""
    x = flatten(f)
    z = x - x.mean(dim=0, keepdim=True)
    z = F.normalize(z, p=2, dim=1, eps=eps)
    return z @ z.t()


def orth_loss(fs: Sequence[Tensor], f1: Sequence[Tensor], f2: Sequence[Tensor],
              alpha: float) -> Tensor:
    """The TPKD term L_orth as implemented here (docs/methods.md): per group,
    C_t = alpha C(f1) + (1 - alpha) C(f2) (teachers' correlation maps merged AFTER their own
    normalisation), then mean((rownorm(C(fs)) - rownorm(C_t))^2); summed over groups."""
    _check_pairs(fs, f1)
    _check_pairs(fs, f2)
    cs = [correlation_map(f) for f in fs]
    ct = merge_maps([correlation_map(f) for f in f1], [correlation_map(f) for f in f2], alpha)
    return sp_loss(cs, ct)


def _check_pairs(a: Sequence[Tensor], b: Sequence[Tensor]) -> None:
    if len(a) != len(b):
        raise ValueError(f"feature lists differ in length: {len(a)} vs {len(b)}")
    for x, y in zip(a, b):
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"batch sizes differ: {x.shape[0]} vs {y.shape[0]}")
