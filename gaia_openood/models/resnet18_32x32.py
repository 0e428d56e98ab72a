"""OpenOOD's CIFAR backbone, ResNet18_32x32, with the same state-dict keys.

Four stages of two BasicBlocks (64/128/256/512 channels, strides 1/2/2/2) on 32 x 32
inputs, adaptive average pooling and ``fc``. ``forward`` takes OpenOOD's
``return_feature`` / ``return_feature_list`` flags and ``get_fc`` returns the head, so
checkpoints trained with OpenOOD (``results/cifar10_resnet18_32x32_*/s*/best.ckpt``)
load and behave the same.
"""
from __future__ import annotations

from typing import List

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ResNet18_32x32"]


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)  # in place, as in OpenOOD
        return F.relu(out)


class ResNet18_32x32(nn.Module):
    def __init__(self, num_classes: int = 10, num_blocks: List[int] = (2, 2, 2, 2)) -> None:
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = self._stage(64, num_blocks[0], 1)
        self.layer2 = self._stage(128, num_blocks[1], 2)
        self.layer3 = self._stage(256, num_blocks[2], 2)
        self.layer4 = self._stage(512, num_blocks[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)
        self.feature_size = 512

    def _stage(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for index in range(blocks):
            layers.append(BasicBlock(self.in_planes, planes, stride if index == 0 else 1))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x: Tensor, return_feature: bool = False, return_feature_list: bool = False):
        feature1 = F.relu(self.bn1(self.conv1(x)))
        feature2 = self.layer1(feature1)
        feature3 = self.layer2(feature2)
        feature4 = self.layer3(feature3)
        feature5 = self.avgpool(self.layer4(feature4))
        feature = feature5.flatten(1)
        logits = self.fc(feature)
        if return_feature:
            return logits, feature
        if return_feature_list:
            return logits, [feature1, feature2, feature3, feature4, feature5]
        return logits

    def get_fc(self):
        return self.fc.weight.detach().cpu().numpy(), self.fc.bias.detach().cpu().numpy()

    def get_fc_layer(self) -> nn.Linear:
        return self.fc
