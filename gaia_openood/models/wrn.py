"""Wide ResNet (Zagoruyko & Komodakis, 2016) for 32 x 32 inputs, e.g. WRN-40-2.

Pre-activation blocks (BN -> ReLU -> conv), three stages of (depth - 4) / 6 blocks with
16k/32k/64k channels, a final BN and ReLU, 8 x 8 average pooling and ``fc``. ReLUs are
in-place modules, as in the common implementations.
"""
from __future__ import annotations

from torch import Tensor, nn

__all__ = ["WideResNet"]


class PreActBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        activated = self.relu1(self.bn1(x))
        out = self.conv1(activated)
        out = self.conv2(self.relu2(self.bn2(out)))
        skip = x if self.shortcut is None else self.shortcut(activated)
        return out + skip


class WideResNet(nn.Module):
    def __init__(self, depth: int = 40, widen_factor: int = 2, num_classes: int = 10) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n + 4, got {depth}")
        blocks = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(3, widths[0], 3, stride=1, padding=1, bias=False)
        self.block1 = self._stage(widths[0], widths[1], blocks, 1)
        self.block2 = self._stage(widths[1], widths[2], blocks, 2)
        self.block3 = self._stage(widths[2], widths[3], blocks, 2)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[3], num_classes)

    @staticmethod
    def _stage(in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        return nn.Sequential(
            *[PreActBlock(in_planes if i == 0 else planes, planes, stride if i == 0 else 1) for i in range(blocks)]
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = self.relu(self.bn1(out))
        return self.fc(self.pool(out).flatten(1))
