"""CIFAR ResNets (He et al. 2016, section 4.2): resnet<6m+2> with three groups of m basic blocks,
widths 16, 32, 64, strides 1, 2, 2; post-activation blocks (conv-BN-ReLU-conv-BN, add, ReLU); a
1x1 conv + BN shortcut where the shape changes (option B, as in the KD repositories TAKD and
RepDistiller); adaptive global average pooling; linear classifier.

``forward(x) -> (logits, [g1, g2, g3])``, the group outputs (after each group's last ReLU; the
network has no final BN-ReLU, so g3 is exactly what is pooled).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .wrn import init_weights, layer_types


class BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, dims: int = 2):
        super().__init__()
        Conv, BN, _ = layer_types(dims)
        self.conv1 = Conv(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = BN(out_ch)
        self.conv2 = Conv(out_ch, out_ch, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = BN(out_ch)
        self.shortcut = (
            nn.Sequential(Conv(in_ch, out_ch, kernel_size=1, stride=stride, bias=False), BN(out_ch))
            if (in_ch != out_ch or stride != 1)
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, depth: int, in_channels: int, num_classes: int, dims: int = 2):
        super().__init__()
        if (depth - 2) % 6 != 0 or depth < 8:
            raise ValueError(f"CIFAR ResNet depth must be 6m+2 >= 8, got {depth}")
        Conv, BN, Pool = layer_types(dims)
        m = (depth - 2) // 6
        widths = (16, 32, 64)
        self.depth, self.dims = depth, dims
        self.group_channels = widths
        self.conv1 = Conv(in_channels, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = BN(16)
        groups, in_ch = [], 16
        for out_ch, stride in zip(widths, (1, 2, 2)):
            blocks = [BasicBlock(in_ch if i == 0 else out_ch, out_ch, stride if i == 0 else 1, dims)
                      for i in range(m)]
            groups.append(nn.Sequential(*blocks))
            in_ch = out_ch
        self.group1, self.group2, self.group3 = groups
        self.pool = Pool(1)
        self.fc = nn.Linear(widths[-1], num_classes)
        init_weights(self)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        out = torch.relu(self.bn1(self.conv1(x)))
        g1 = self.group1(out)
        g2 = self.group2(g1)
        g3 = self.group3(g2)
        out = torch.flatten(self.pool(g3), 1)
        return self.fc(out), [g1, g2, g3]
