"""The CIFAR ResNets of He et al. (2016), option-A shortcuts: ResNet20, 32, 44, 56, 110.

Three stages of n BasicBlocks (16/32/64 channels, strides 1/2/2), global average pooling
and one linear layer. Where a block changes shape its shortcut subsamples by 2 and
zero-pads the channels, so it has no parameters. The state-dict keys match the widely
used pretrained weights (``conv1``, ``bn1``, ``layer{1,2,3}.{i}.conv{1,2}``,
``layer{1,2,3}.{i}.bn{1,2}``, ``linear``).
"""
from __future__ import annotations

from typing import List

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["CifarResNet", "cifar_resnet"]

DEPTHS = {20: 3, 32: 5, 44: 7, 56: 9, 110: 18}


class PadShortcut(nn.Module):
    """Option-A shortcut: take every second pixel, zero-pad ``pad`` channels on each side."""

    def __init__(self, pad: int) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or in_planes != planes:
            self.shortcut: nn.Module = PadShortcut(planes // 4)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """CIFAR ResNet with ``blocks`` BasicBlocks per stage; input (B, 3, 32, 32)."""

    def __init__(self, blocks: int, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.in_planes = 16
        self.layer1 = self._stage(16, blocks, 1)
        self.layer2 = self._stage(32, blocks, 2)
        self.layer3 = self._stage(64, blocks, 2)
        self.linear = nn.Linear(64, num_classes)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)

    def _stage(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers: List[nn.Module] = []
        for index in range(blocks):
            layers.append(BasicBlock(self.in_planes, planes, stride if index == 0 else 1))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def cifar_resnet(depth: int, num_classes: int = 10) -> CifarResNet:
    """ResNet-``depth`` for 32 x 32 inputs; depth in 20, 32, 44, 56, 110."""
    if depth not in DEPTHS:
        raise ValueError(f"CIFAR ResNet depth must be one of {sorted(DEPTHS)}, got {depth}")
    return CifarResNet(DEPTHS[depth], num_classes)
