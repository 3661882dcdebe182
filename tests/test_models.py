"""Models: parameter counts, shapes, group outputs, registry parsing and errors."""

import pytest
import torch
from torch import nn

from pipeline.errors import ParamsError
from pipeline.metrics import count_parameters
from pipeline.models import MODELS, build_model


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("name,expected", [("wrn16_1", 175_066), ("wrn16_3", 1_549_530)])
def test_wrn_parameter_counts_match_literature(name, expected):
    assert count_parameters(build_model(name, 3, 10)) == expected


def test_wrn_1d_parameter_count():
    # conv 40*16*3 + group1 2*(2*16+2*768) + group2 (32+1536+64+3072+512 + 64+3072+64+3072)
    # + group3 (64+6144+128+12288+2048 + 128+12288+128+12288) + final BN 128 + fc 64*12+12
    assert count_parameters(build_model("wrn16_1", 40, 12, dims=1)) == 63_020
    assert 61_000 <= count_parameters(build_model("wrn16_1", 3, 14, dims=1)) <= 63_100


def test_count_parameters_trainable_only():
    m = build_model("wrn10_1", 3, 10)
    total = count_parameters(m)
    m.fc.weight.requires_grad_(False)
    assert count_parameters(m, trainable_only=True) == total - m.fc.weight.numel()


@pytest.mark.parametrize("name,in_ch,size,groups", [
    ("wrn16_1", 3, 32, [(16, 32), (32, 16), (64, 8)]),
    ("wrn16_1", 6, 50, [(16, 50), (32, 25), (64, 13)]),
    ("wrn10_2", 3, 64, [(32, 64), (64, 32), (128, 16)]),
])
def test_wrn_2d_shapes(name, in_ch, size, groups):
    model = build_model(name, in_ch, 7).eval()
    logits, feats = model(torch.randn(2, in_ch, size, size))
    assert logits.shape == (2, 7)
    assert len(feats) == 3
    assert [(f.shape[1], f.shape[2]) for f in feats] == groups
    assert all(f.shape[0] == 2 and f.shape[2] == f.shape[3] for f in feats)


def test_wrn_1d_shapes():
    model = build_model("wrn16_1", 6, 4, dims=1).eval()
    logits, feats = model(torch.randn(2, 6, 100))
    assert logits.shape == (2, 4)
    assert [tuple(f.shape) for f in feats] == [(2, 16, 100), (2, 32, 50), (2, 64, 25)]
    assert all(isinstance(m, nn.Conv1d) for m in model.modules() if "Conv" in type(m).__name__)


def test_resnet_shapes_and_count():
    model = build_model("resnet8", 3, 10).eval()
    logits, feats = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10)
    assert [tuple(f.shape[1:]) for f in feats] == [(16, 32, 32), (32, 16, 16), (64, 8, 8)]
    assert 0.26e6 < count_parameters(build_model("resnet20", 3, 10)) < 0.28e6   # ~0.27M
    _, feats = build_model("resnet14", 3, 5, dims=1)(torch.randn(2, 3, 40))
    assert [tuple(f.shape[1:]) for f in feats] == [(16, 40), (32, 20), (64, 10)]


def test_wrn_init():
    model = build_model("wrn10_1", 3, 10)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    assert torch.all(model.fc.bias == 0)
    w = model.group3[0].conv2.weight                   # 64*64*3*3, kaiming fan_out std sqrt(2/576)
    assert abs(w.std().item() - (2 / (64 * 9)) ** 0.5) < 0.005


def test_group3_is_before_final_bn_relu():
    model = build_model("wrn10_1", 3, 10).eval()
    logits, feats = model(torch.randn(4, 3, 16, 16))
    assert (feats[2] < 0).any()                      # raw residual output, not ReLU'd
    pooled = torch.relu(model.bn(feats[2])).mean(dim=(2, 3))
    torch.testing.assert_close(model.fc(pooled), logits)


def test_backward_reaches_first_conv():
    model = build_model("wrn10_1", 3, 10)
    logits, feats = model(torch.randn(2, 3, 8, 8))
    (logits.sum() + feats[0].mean()).backward()
    assert model.conv1.weight.grad is not None and model.conv1.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["wrn10_1", "wrn16_3", "wrn22_1", "wrn28_1", "wrn40_2", "resnet8",
                                  "resnet20", "resnet56"])
def test_registry_parses_generic_names(name):
    assert build_model(name, 3, 10) is not None


@pytest.mark.parametrize("name", ["wrn15_1", "foo", "wrn16_0", "wrn4_1", "wrn16-1", "resnet9",
                                  "WRN16_1", ""])
def test_bad_names_raise_params_error(name):
    with pytest.raises(ParamsError) as err:
        build_model(name, 3, 10)
    msg = str(err.value)
    assert repr(name) in msg
    assert "wrn<depth>_<width>" in msg and "resnet<n>" in msg


def test_bad_dims_and_sizes():
    with pytest.raises(ParamsError, match="dims"):
        build_model("wrn16_1", 3, 10, dims=3)
    with pytest.raises(ParamsError, match="in_channels"):
        build_model("wrn16_1", 0, 10)
    with pytest.raises(ParamsError, match="num_classes"):
        build_model("wrn16_1", 3, 0)


def test_registry_families():
    assert {"wrn", "resnet"} <= set(MODELS)
