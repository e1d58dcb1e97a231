"""Composite blocks of the classic backbones (ResNet, GoogLeNet) and the small ops their necks need."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import ConvBNAct


def _projection(in_channels: int, out_channels: int, stride: int) -> ConvBNAct | None:
    """ResNet's shortcut: 1×1 conv + BN when the shape changes, else None (identity)."""
    if stride == 1 and in_channels == out_channels:
        return None
    return ConvBNAct(in_channels, out_channels, 1, stride=stride, activation_name="linear")


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck: 1×1 → 3×3 (stride, groups) → 1×1, each with BN, added to the
    (projected) input, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, width: int, stride: int = 1, groups: int = 1):
        super().__init__()
        self.conv1 = ConvBNAct(in_channels, width, 1, activation_name="relu")
        self.conv2 = ConvBNAct(width, width, 3, stride=stride, groups=groups, activation_name="relu")
        self.conv3 = ConvBNAct(width, out_channels, 1, activation_name="linear")
        self.downsample = _projection(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(self.conv3(self.conv2(self.conv1(x))) + shortcut)


class BasicBlock(nn.Module):
    """ResNet-18/34 basic block: 3×3 (stride) → 3×3, each with BN, added to the (projected) input, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = ConvBNAct(in_channels, out_channels, 3, stride=stride, activation_name="relu")
        self.conv2 = ConvBNAct(out_channels, out_channels, 3, activation_name="linear")
        self.downsample = _projection(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(self.conv2(self.conv1(x)) + shortcut)


def _conv_relu(in_channels: int, out_channels: int, size: int) -> ConvBNAct:
    """GoogLeNet's convolution: biased, 'same' padding, ReLU, no batch norm."""
    return ConvBNAct(in_channels, out_channels, size, batch_normalize=False, activation_name="relu")


class Inception(nn.Module):
    """GoogLeNet Inception v1 module: 1×1, 1×1→3×3, 1×1→5×5 and 3×3 max pool→1×1 branches,
    concatenated in that order."""

    def __init__(
        self,
        in_channels: int,
        out_1x1: int,
        reduce_3x3: int,
        out_3x3: int,
        reduce_5x5: int,
        out_5x5: int,
        pool_proj: int,
    ):
        super().__init__()
        self.branch1 = _conv_relu(in_channels, out_1x1, 1)
        self.branch2 = nn.Sequential(_conv_relu(in_channels, reduce_3x3, 1), _conv_relu(reduce_3x3, out_3x3, 3))
        self.branch3 = nn.Sequential(_conv_relu(in_channels, reduce_5x5, 1), _conv_relu(reduce_5x5, out_5x5, 5))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), _conv_relu(in_channels, pool_proj, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], dim=1)


class Resize(nn.Module):
    """Resize the first input to the height×width of the second (FPN's top-down path at any input size)."""

    def __init__(self, mode: str = "nearest"):
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        align = False if self.mode == "bilinear" else None
        return F.interpolate(x, size=like.shape[-2:], mode=self.mode, align_corners=align)


class AdaptiveAvgPool(nn.Module):
    """Average-pool to a fixed height×width whatever the input size (torchvision's VGG classifier input)."""

    def __init__(self, size: tuple[int, int]):
        super().__init__()
        self.size = tuple(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x, self.size)
