"""Tests for pipeline.metrics: every expected value is computed by hand here, so that the
libraries behind it (torchmetrics, PyTorch's flop counter) are held to today's numbers."""

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from pipeline import metrics as ev


# --------------------------------------------------------------------------- #
# fixtures / tiny models
# --------------------------------------------------------------------------- #
class MeanIntensity(nn.Module):
    """Predicts class 1 iff the mean of the input exceeds ``threshold``."""

    def __init__(self, threshold: float = 0.5):
        super().__init__()
        self.threshold = threshold
        self.dummy = nn.Parameter(torch.zeros(1))  # so the model has a device

    def forward(self, x):
        m = x.flatten(1).mean(dim=1) - self.threshold
        logits = torch.stack([-m, m], dim=1) * 10 + 0 * self.dummy
        return logits, [x, x, x]


class Recorder(nn.Module):
    """Records the min / max of every input it sees; constant logits."""

    def __init__(self):
        super().__init__()
        self.lo, self.hi = math.inf, -math.inf

    def forward(self, x):
        self.lo = min(self.lo, float(x.min()))
        self.hi = max(self.hi, float(x.max()))
        return torch.zeros(x.shape[0], 2), []


class TinyWRN(nn.Module):
    """Stem conv + one WRN-style basic block (stride 2, 1x1 shortcut) + head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv1 = nn.Conv2d(4, 8, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.short = nn.Conv2d(4, 8, 1, stride=2, bias=False)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        g0 = self.stem(x)
        o = torch.relu(self.bn1(g0))
        g1 = self.conv2(torch.relu(self.bn2(self.conv1(o)))) + self.short(o)
        pooled = g1.mean(dim=(2, 3))
        return self.fc(pooled), [g0, g1, g1]


class Tiny1d(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(6, 4, 5, stride=2)  # no padding
        self.dw = nn.Conv1d(4, 4, 3, padding=1, groups=4)
        self.fc = nn.Linear(4 * 48, 3)

    def forward(self, x):
        h = self.dw(self.conv(x))
        return self.fc(h.flatten(1)), [h, h, h]


def probs_to_logits(p):
    return torch.log(torch.tensor(p, dtype=torch.float64)).float()


# --------------------------------------------------------------------------- #
# accuracy, per-class, confusion
# --------------------------------------------------------------------------- #
def test_topk_accuracy_hand_made():
    logits = torch.tensor(
        [
            [5.0, 4.0, 3.0, 2.0, 1.0, 0.0],  # ranking 0,1,2,3,4,5
            [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],  # ranking 5,4,3,2,1,0
            [1.0, 9.0, 2.0, 8.0, 3.0, 7.0],  # ranking 1,3,5,4,2,0
            [0.0, 0.05, 9.0, 0.5, 0.2, 0.1],  # ranking 2,3,4,5,1,0
        ]
    )
    y = torch.tensor([0, 3, 4, 1])
    # label rank per row: 1st, 3rd, 4th, 5th
    # top-1 hits: row0 only -> 1/4
    assert ev.topk_accuracy(logits, y, 1) == pytest.approx(25.0)
    # top-3: rows 0, 1 -> 2/4
    assert ev.topk_accuracy(logits, y, 3) == pytest.approx(50.0)
    # top-4: rows 0, 1, 2 -> 3/4
    assert ev.topk_accuracy(logits, y, 4) == pytest.approx(75.0)
    # top-5: all -> 4/4
    assert ev.topk_accuracy(logits, y, 5) == pytest.approx(100.0)
    with pytest.raises(ValueError):
        ev.topk_accuracy(logits, y, 7)
    with pytest.raises(ValueError):
        ev.topk_accuracy(logits, y[:3], 1)


def test_confusion_and_per_class():
    # predictions (argmax):      0  1  1  2  0  2  1
    logits = torch.eye(3)[[0, 1, 1, 2, 0, 2, 1]]
    y = torch.tensor([0, 1, 0, 2, 0, 1, 1])
    cm = ev.confusion_matrix(logits, y, 3)
    expected = np.array(
        [
            [2, 1, 0],  # true 0: pred 0 (x2), pred 1 (x1)
            [0, 2, 1],  # true 1: pred 1 (x2), pred 2 (x1)
            [0, 0, 1],  # true 2: pred 2
        ]
    )
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, expected)
    pc = ev.per_class_accuracy(logits, y, 3)
    assert pc == pytest.approx([200 / 3, 200 / 3, 100.0])
    # a class without samples -> None (JSON-safe), not NaN
    pc4 = ev.per_class_accuracy(torch.eye(4)[[0, 1, 1, 2, 0, 2, 1]], y, 4)
    assert pc4[3] is None
    with pytest.raises(ValueError):
        ev.confusion_matrix(logits, torch.tensor([0, 1, 0, 2, 0, 1, 3]), 3)


# --------------------------------------------------------------------------- #
# calibration
# --------------------------------------------------------------------------- #
def test_ece_two_bins_by_hand():
    probs = [
        [0.90, 0.05, 0.05],  # y=0 correct, conf 0.90 -> bin (0.5, 1]
        [0.70, 0.20, 0.10],  # y=1 wrong,   conf 0.70 -> bin (0.5, 1]
        [0.80, 0.10, 0.10],  # y=0 correct, conf 0.80 -> bin (0.5, 1]
        [0.40, 0.30, 0.30],  # y=0 correct, conf 0.40 -> bin [0, 0.5]
        [0.30, 0.45, 0.25],  # y=0 wrong,   conf 0.45 -> bin [0, 0.5]
    ]
    y = torch.tensor([0, 1, 0, 0, 0])
    logits = probs_to_logits(probs)
    # high bin: conf mean (0.9+0.7+0.8)/3 = 0.8, acc 2/3 -> |gap| = 2/15, weight 3/5 -> 0.08
    # low bin:  conf mean (0.4+0.45)/2 = 0.425, acc 1/2 -> |gap| = 0.075, weight 2/5 -> 0.03
    # ECE = 0.08 + 0.03 = 0.11
    assert ev.calibration_error(logits, y, n_bins=2) == pytest.approx(0.11, abs=1e-6)
    bins = ev.reliability_bins(logits, y, n_bins=2)
    assert bins["count"] == [2, 3]
    assert bins["edges"] == pytest.approx([0.0, 0.5, 1.0])
    assert bins["confidence"] == pytest.approx([0.425, 0.8], abs=1e-6)
    assert bins["accuracy"] == pytest.approx([0.5, 2 / 3])
    json.dumps(bins)  # serialisable


def textbook_ece(logits, y, n_bins):
    """Guo et al. (2017), written out: equal-width bins (lo, hi], |accuracy - confidence|
    weighted by each bin's share of the samples (the code the library replaced)."""
    probs = torch.softmax(logits.double(), dim=1)
    conf, pred = probs.max(dim=1)
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            gap = (pred[inside] == y[inside]).double().mean() - conf[inside].mean()
            total += inside.double().mean().item() * abs(gap.item())
    return total


@pytest.mark.parametrize("n_bins", [1, 5, 15])
def test_ece_equals_the_textbook_formula_on_random_logits(n_bins):
    generator = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(500, 7, generator=generator)
    y = torch.randint(0, 7, (500,), generator=generator)
    expected = textbook_ece(logits, y, n_bins)
    # torchmetrics bins float32 confidences: the same value to float32 precision
    assert ev.calibration_error(logits, y, n_bins) == pytest.approx(expected, abs=1e-6)
    bins = ev.reliability_bins(logits, y, n_bins)
    from_bins = sum(n / 500 * abs(a - c) for n, a, c in zip(bins["count"], bins["accuracy"], bins["confidence"]) if n)
    assert from_bins == pytest.approx(expected, abs=1e-12)
    assert sum(bins["count"]) == 500


def test_ece_perfect_confident_model_is_zero_and_empty_bins_are_none():
    y = torch.tensor([0, 1, 2, 1, 0])
    logits = torch.nn.functional.one_hot(y, 3).float() * 100.0  # softmax conf == 1.0
    assert ev.calibration_error(logits, y, n_bins=15) == pytest.approx(0.0, abs=1e-9)
    bins = ev.reliability_bins(logits, y, n_bins=15)
    # confidence exactly 1.0: torchmetrics' own bin, folded into the last bin of the diagram
    assert len(bins["count"]) == 15 and bins["count"][-1] == 5 and sum(bins["count"]) == 5
    assert bins["accuracy"][0] is None and bins["accuracy"][-1] == 1.0
    # confidently wrong -> ECE 1
    wrong = torch.nn.functional.one_hot((y + 1) % 3, 3).float() * 100.0
    assert ev.calibration_error(wrong, y) == pytest.approx(1.0, abs=1e-9)


# --------------------------------------------------------------------------- #
# predict / noise robustness
# --------------------------------------------------------------------------- #
def _mean_data(n=200, pixels=(1, 2, 2)):
    # half the images at intensity 0.4 (class 0), half at 0.6 (class 1)
    y = torch.arange(n) % 2
    x = (0.4 + 0.2 * y.float()).view(-1, 1, 1, 1).expand(n, *pixels).clone()
    return x, y


def test_predict_batches_transform_and_mode():
    x, y = _mean_data(50)
    model = MeanIntensity(threshold=0.0)
    model.train()
    shift = lambda t: t - 0.5  # noqa: E731 -- threshold 0 after shift == threshold 0.5
    full = ev.predict(model, x, batch_size=1000, transform=shift)
    batched = ev.predict(model, x, batch_size=7, transform=shift)
    assert full.shape == (50, 2)
    torch.testing.assert_close(full, batched)
    assert (full.argmax(1) == y).all()
    assert model.training  # mode restored
    # without the transform every image has mean > 0 -> class 1 everywhere
    assert (ev.predict(model, x).argmax(1) == 1).all()


def test_noise_robustness_std0_equals_clean_and_noise_degrades():
    x, y = _mean_data(400)
    model = MeanIntensity(threshold=0.0)
    shift = lambda t: t - 0.5  # noqa: E731
    clean = ev.topk_accuracy(ev.predict(model, x, transform=shift), y)
    assert clean == 100.0
    res = ev.noise_robustness(
        model, x, y, [0.0, 0.05, 0.3], transform=shift, seed=0, batch_size=64
    )
    assert list(res) == ["0.0", "0.05", "0.3"]
    assert res["0.0"] == clean
    # std of the 4-pixel mean: 0.05/2 = 0.025 vs margin 0.1 -> (almost) no flips
    assert res["0.05"] > 97.0
    # std 0.3 -> std of mean 0.15 vs margin 0.1 -> ~25 % flipped
    assert res["0.3"] < 90.0
    # deterministic, and independent of batch size and of the other stds
    again = ev.noise_robustness(model, x, y, [0.3], transform=shift, seed=0, batch_size=64)
    assert again["0.3"] == res["0.3"]
    other_seed = ev.noise_robustness(model, x, y, [0.3], transform=shift, seed=1, batch_size=64)
    assert other_seed["0.3"] != res["0.3"]


def test_noise_robustness_clamp():
    x = torch.full((32, 1, 4, 4), 0.5)
    y = torch.zeros(32, dtype=torch.long)
    rec = Recorder()
    ev.noise_robustness(rec, x, y, [1.0], seed=0, clamp=True)
    assert rec.lo >= 0.0 and rec.hi <= 1.0
    rec = Recorder()
    ev.noise_robustness(rec, x, y, [1.0], seed=0, clamp=False)
    assert rec.lo < 0.0 and rec.hi > 1.0


# --------------------------------------------------------------------------- #
# cost
# --------------------------------------------------------------------------- #
def test_count_parameters():
    m = TinyWRN()
    # convs: 3*4*9 + 4*8*9 + 8*8*9 + 4*8 = 108 + 288 + 576 + 32 = 1004
    # bn: 2*4 + 2*8 = 24; fc: 8*10 + 10 = 90 -> 1118
    assert ev.count_parameters(m) == 1118
    m.fc.weight.requires_grad_(False)
    assert ev.count_parameters(m, trainable_only=True) == 1118 - 80


def test_count_macs_wrn_block_by_hand():
    m = TinyWRN()
    m.train()
    # input 3x8x8
    # stem   3->4, k3, pad1, s1: out 4*8*8 = 256 elems * 3 * 9 = 6912
    # conv1  4->8, k3, pad1, s2: out 8*4*4 = 128 elems * 4 * 9 = 4608
    # conv2  8->8, k3, pad1, s1: out 128 elems * 8 * 9         = 9216
    # short  4->8, k1,       s2: out 128 elems * 4 * 1         =  512
    # fc     8 -> 10                                           =   80
    assert ev.count_macs(m, (3, 8, 8)) == 6912 + 4608 + 9216 + 512 + 80  # 21328
    assert m.training  # mode restored


def test_count_macs_conv1d_stride_groups():
    # input 6x100
    # conv 6->4, k5, s2, no pad: L = (100-5)//2 + 1 = 48; 4*48 = 192 elems * 6 * 5 = 5760
    # depthwise 4->4 groups 4, k3, pad1: 192 elems * (4/4) * 3  =  576
    # fc 192 -> 3                                              =  576
    assert ev.count_macs(Tiny1d(), (6, 100)) == 5760 + 576 + 576


def test_cpu_latency_positive_and_threads_restored():
    before = torch.get_num_threads()
    ms = ev.cpu_latency_ms(TinyWRN(), (3, 8, 8), repeats=5, warmup=1, threads=1)
    assert isinstance(ms, float) and ms > 0.0 and math.isfinite(ms)
    assert torch.get_num_threads() == before
