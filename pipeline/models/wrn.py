"""Wide residual networks WRN-d-k (Zagoruyko & Komodakis 2016) as used in the CIFAR KD literature.

Same block structure as the authors' ``WideResNet.py`` (jeunsom/TGD, jeunsom/TDA_KD) and the
attention-transfer / similarity-preserving KD code: 3x3 conv to 16 channels, three groups of
(d-4)/6 pre-activation basic blocks (BN-ReLU-conv3x3-BN-ReLU-conv3x3) with widths 16k, 32k, 64k
and strides 1, 2, 2, a 1x1 conv shortcut (taken from the pre-activated input) where the shape
changes, final BN-ReLU, adaptive global average pooling, linear classifier.

``forward(x)`` returns ``(logits, [g1, g2, g3])``: the three group outputs, taken BEFORE the final
BN-ReLU (the raw residual-stream outputs of the groups, exactly what the authors' code returns as
``attention1..3`` and feeds to its similarity maps). g3 is therefore not the pooled feature.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

_LAYERS = {
    1: (nn.Conv1d, nn.BatchNorm1d, nn.AdaptiveAvgPool1d),
    2: (nn.Conv2d, nn.BatchNorm2d, nn.AdaptiveAvgPool2d),
}


def layer_types(dims: int):
    """(Conv, BatchNorm, AdaptiveAvgPool) classes for 1-D (B, C, L) or 2-D (B, C, H, W) inputs."""
    return _LAYERS[dims]


def init_weights(model: nn.Module) -> None:
    """Kaiming-normal convs (fan_out, ReLU gain: std sqrt(2 / (k * out_channels)) as in the
    authors' code), BN weight 1 bias 0, linear bias 0 (linear weight keeps PyTorch's default)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3(stride)-BN-ReLU-conv3x3 + shortcut (identity, or 1x1 conv of the
    pre-activated input when the number of channels or the resolution changes)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, dims: int = 2, drop_rate: float = 0.0):
        super().__init__()
        Conv, BN, _ = layer_types(dims)
        self.bn1 = BN(in_ch)
        self.conv1 = Conv(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = BN(out_ch)
        self.conv2 = Conv(out_ch, out_ch, kernel_size=3, stride=1, padding=1, bias=False)
        self.drop_rate = drop_rate
        self.shortcut = (
            Conv(in_ch, out_ch, kernel_size=1, stride=stride, padding=0, bias=False)
            if (in_ch != out_ch or stride != 1)
            else None
        )

    def forward(self, x: Tensor) -> Tensor:
        a = torch.relu(self.bn1(x))
        out = self.conv1(a)
        out = torch.relu(self.bn2(out))
        if self.drop_rate > 0:
            out = nn.functional.dropout(out, p=self.drop_rate, training=self.training)
        out = self.conv2(out)
        skip = x if self.shortcut is None else self.shortcut(a)
        return out + skip


class WideResNet(nn.Module):
    """WRN-depth-width for ``dims``-D inputs; ``forward(x) -> (logits, [g1, g2, g3])``."""

    def __init__(self, depth: int, width: int, in_channels: int, num_classes: int, dims: int = 2,
                 drop_rate: float = 0.0):
        super().__init__()
        if (depth - 4) % 6 != 0 or depth < 10:
            raise ValueError(f"WRN depth must be 6n+4 >= 10, got {depth}")
        Conv, BN, Pool = layer_types(dims)
        n = (depth - 4) // 6
        widths = [16 * width, 32 * width, 64 * width]
        self.depth, self.width, self.dims = depth, width, dims
        self.group_channels = tuple(widths)
        self.conv1 = Conv(in_channels, 16, kernel_size=3, stride=1, padding=1, bias=False)
        groups, in_ch = [], 16
        for out_ch, stride in zip(widths, (1, 2, 2)):
            blocks = [PreActBlock(in_ch if i == 0 else out_ch, out_ch, stride if i == 0 else 1,
                                  dims, drop_rate) for i in range(n)]
            groups.append(nn.Sequential(*blocks))
            in_ch = out_ch
        self.group1, self.group2, self.group3 = groups
        self.bn = BN(widths[-1])
        self.pool = Pool(1)
        self.fc = nn.Linear(widths[-1], num_classes)
        init_weights(self)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        out = self.conv1(x)
        g1 = self.group1(out)
        g2 = self.group2(g1)
        g3 = self.group3(g2)
        out = torch.relu(self.bn(g3))
        out = torch.flatten(self.pool(out), 1)
        return self.fc(out), [g1, g2, g3]
