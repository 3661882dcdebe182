"""The map-share diagnostic: teacher 2's share of each merged map, logged per epoch, never a loss."""
import math

import pytest
import torch
from torch import nn

from pipeline.distill import build_method
from pipeline.distill.diagnostics import map_share
from pipeline.distill.losses import correlation_map

TGD = {"lambda": 0.9, "temperature": 4.0, "kl_reduction": "batchmean", "alpha": 0.7, "gamma": 1000.0}
TPKD = {"lambda": 0.9, "temperature": 4.0, "kl_reduction": "batchmean", "alpha": 0.7, "beta": 200.0}


class Stub(nn.Module):
    """Fixed logits and group outputs."""

    def __init__(self, feats):
        super().__init__()
        self.feats = feats
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.w * torch.zeros(len(x), 3), [self.w * f for f in self.feats]


def _teachers():
    # G1 = [[2, 2], [2, 2]], G2 = [[4, 0], [0, 0]] in every group
    f1 = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    f2 = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    return {"image": Stub([f1] * 3), "topology": Stub([f2] * 3)}


def _batch():
    return {"x": torch.zeros(2, 1), "pi": torch.zeros(2, 1), "y": torch.tensor([0, 1])}


@pytest.mark.parametrize("alpha", [0.5, 0.9])
def test_tgd_share_by_hand(alpha):
    student = Stub([torch.tensor([[1.0, 0.0], [0.0, 1.0]])] * 3)
    method = build_method("tgd", student, _teachers(), dict(TGD, alpha=alpha))
    _, losses = method(_batch())
    assert set(losses) == {"ce", "kd", "sim"}  # a diagnostic, not a loss
    # merged = alpha G1 + (1 - alpha) G2 = [[2a + 4(1-a), 2a], [2a, 2a]]; part = [[4(1-a), 0], [0, 0]]
    merged = math.sqrt((2 * alpha + 4 * (1 - alpha)) ** 2 + 3 * (2 * alpha) ** 2)
    expected = 4 * (1 - alpha) / merged
    shares = method.pop_diagnostics()  # the loop logs their batch-size-weighted epoch mean
    assert shares == pytest.approx({"share_g1": expected, "share_g2": expected, "share_g3": expected})
    assert method.pop_diagnostics() == {}  # taken once per step


def test_share_of_an_all_zero_map_is_zero():
    assert map_share(torch.zeros(3, 3), torch.zeros(3, 3)).item() == 0.0


def test_tpkd_share_uses_the_correlation_maps():
    torch.manual_seed(0)
    f1, f2 = torch.randn(5, 4), torch.randn(5, 6)
    teachers = {"image": Stub([f1] * 3), "topology": Stub([f2] * 3)}
    method = build_method("tpkd", Stub([torch.randn(5, 3)] * 3), teachers, dict(TPKD, alpha=0.7))
    method({"x": torch.zeros(5, 1), "pi": torch.zeros(5, 1), "y": torch.arange(5) % 3})
    c1, c2 = correlation_map(f1), correlation_map(f2)
    expected = (0.3 * c2).norm() / (0.7 * c1 + 0.3 * c2).norm()
    assert method.pop_diagnostics()["share_g2"] == pytest.approx(expected.item(), rel=1e-6)
