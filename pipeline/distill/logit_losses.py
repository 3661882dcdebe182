"""Loss functions of the logit baselines aver and dkd (pure functions, no state).

Kept apart from ``pipeline.distill.losses``, which the teachers' and the scratch student's
stages import (its cross-entropy): a new baseline's arithmetic here never re-trains them.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .losses import kd_kl


def averaged_kd_kl(zs: Tensor, teacher_logits: Sequence[Tensor], temperature: float,
                   reduction: str = "batchmean") -> Tensor:
    """KL(p_avg || softmax(zs/T)) with p_avg = mean_k softmax(z_k/T), the teachers' softened
    outputs averaged (AVER, the usual multi-teacher KD target). ``reduction`` as in kd_kl; the
    T^2 factor is not applied here."""
    if not teacher_logits:
        raise ValueError("averaged_kd_kl needs at least one teacher's logits")
    log_p = torch.stack([F.log_softmax(z / temperature, dim=1) for z in teacher_logits])
    log_avg = torch.logsumexp(log_p, dim=0) - math.log(len(teacher_logits))
    # log_avg is a normalised log-distribution, so log_softmax(T * log_avg / T) = log_avg:
    # kd_kl's own arithmetic (and reductions) give the KL to the averaged target.
    return kd_kl(zs, temperature * log_avg, temperature, reduction)


def dkd_parts(zs: Tensor, zt: Tensor, y: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """Decoupled KD (Zhao et al., CVPR 2022) as mdistiller's ``dkd_loss`` computes it, before
    its weights alpha and beta: (TCKD, NCKD), each T^2 * KL summed over classes / batch.

    TCKD: KL between the binary (target class, all others) distributions of teacher and student;
    NCKD: KL between their distributions over the non-target classes (the target logit pushed
    down by 1000 before the softmax, as mdistiller does)."""
    T = temperature
    gt = F.one_hot(y, zs.shape[1]).to(zs.dtype)
    ps, pt = F.softmax(zs / T, dim=1), F.softmax(zt / T, dim=1)
    bin_s = torch.stack([(ps * gt).sum(1), (ps * (1 - gt)).sum(1)], dim=1)
    bin_t = torch.stack([(pt * gt).sum(1), (pt * (1 - gt)).sum(1)], dim=1)
    tckd = F.kl_div(torch.log(bin_s), bin_t, reduction="sum") * T ** 2 / y.shape[0]
    log_ps_other = F.log_softmax(zs / T - 1000.0 * gt, dim=1)
    pt_other = F.softmax(zt / T - 1000.0 * gt, dim=1)
    nckd = F.kl_div(log_ps_other, pt_other, reduction="sum") * T ** 2 / y.shape[0]
    return tckd, nckd
