"""Receptive-field and context blocks: RFBNet BasicRFB and BasicRFB_small, SSH context module."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import ConvBNAct


class RFBScaledResidual(nn.Module):
    """RFB tail shared by both variants: linear 1×1 fuse of the branches, `out·scale + shortcut`,
    ReLU, with a 1×1 conv+BN projection shortcut carrying the stride."""

    def __init__(
        self, branches: list[nn.Module], branch_channels: int, in_channels: int, filters: int, stride: int, scale: float
    ):
        super().__init__()
        self.scale = scale
        self.branches = nn.ModuleList(branches)
        self.linear = ConvBNAct(branch_channels, filters, 1, activation_name="linear")
        self.shortcut = ConvBNAct(in_channels, filters, 1, stride, activation_name="linear")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(torch.cat([branch(x) for branch in self.branches], dim=1))
        return F.relu(out * self.scale + self.shortcut(x))


class RFB(RFBScaledResidual):
    """RFBNet BasicRFB: three branches (inter = in/8) ending in 3×3 convs of dilation visual,
    visual+1 and 2·visual+1, like receptive fields growing with eccentricity."""

    def __init__(self, in_channels: int, filters: int, stride: int = 1, scale: float = 0.1, visual: int = 1):
        inter = in_channels // 8
        mid = inter // 2 * 3
        branches = [
            nn.Sequential(
                ConvBNAct(in_channels, 2 * inter, 1, stride),
                ConvBNAct(2 * inter, 2 * inter, 3, dilation=visual, activation_name="linear"),
            ),
            nn.Sequential(
                ConvBNAct(in_channels, inter, 1),
                ConvBNAct(inter, 2 * inter, 3, stride),
                ConvBNAct(2 * inter, 2 * inter, 3, dilation=visual + 1, activation_name="linear"),
            ),
            nn.Sequential(
                ConvBNAct(in_channels, inter, 1),
                ConvBNAct(inter, mid, 3),
                ConvBNAct(mid, 2 * inter, 3, stride),
                ConvBNAct(2 * inter, 2 * inter, 3, dilation=2 * visual + 1, activation_name="linear"),
            ),
        ]
        super().__init__(branches, 6 * inter, in_channels, filters, stride, scale)


class RFBSmall(RFBScaledResidual):
    """RFBNet BasicRFB_small (RFB-s): four branches (inter = in/4) with 1×3/3×1 convs and
    dilations 1, 3, 3, 5. Every branch carries the stride (the reference strides only two)."""

    def __init__(self, in_channels: int, filters: int, stride: int = 1, scale: float = 0.1):
        inter = in_channels // 4
        quarter, mid = inter // 2, inter // 4 * 3
        branches = [
            nn.Sequential(
                ConvBNAct(in_channels, inter, 1, stride),
                ConvBNAct(inter, inter, 3, activation_name="linear"),
            ),
            nn.Sequential(
                ConvBNAct(in_channels, inter, 1),
                ConvBNAct(inter, inter, (3, 1), stride),
                ConvBNAct(inter, inter, 3, dilation=3, activation_name="linear"),
            ),
            nn.Sequential(
                ConvBNAct(in_channels, inter, 1),
                ConvBNAct(inter, inter, (1, 3), stride),
                ConvBNAct(inter, inter, 3, dilation=3, activation_name="linear"),
            ),
            nn.Sequential(
                ConvBNAct(in_channels, quarter, 1),
                ConvBNAct(quarter, mid, (1, 3)),
                ConvBNAct(mid, inter, (3, 1), stride),
                ConvBNAct(inter, inter, 3, dilation=5, activation_name="linear"),
            ),
        ]
        super().__init__(branches, 4 * inter, in_channels, filters, stride, scale)


class SSHContext(nn.Module):
    """SSH context module: 3×3 stem to filters/2, then a 3×3 branch and a two-3×3 branch (a 5×5
    and 7×7 receptive field), concatenated; every conv is conv+BN+ReLU."""

    def __init__(self, in_channels: int, filters: int):
        super().__init__()
        half = filters // 2
        self.stem = ConvBNAct(in_channels, half, 3)
        self.branch1 = ConvBNAct(half, half, 3)
        self.branch2 = nn.Sequential(ConvBNAct(half, half, 3), ConvBNAct(half, half, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return torch.cat([self.branch1(x), self.branch2(x)], dim=1)
