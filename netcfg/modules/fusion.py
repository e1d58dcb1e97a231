"""Feature-fusion blocks across pyramid levels: ASFF and ExFuse's semantic embedding branch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import ConvBNAct


class ASFFDownsample(nn.Module):
    """ASFF resize of a finer level: ×2 by a stride-2 3×3 conv+BN+leaky, ×4 by a 3×3 stride-2
    max pool first."""

    def __init__(self, in_channels: int, out_channels: int, factor: int):
        super().__init__()
        self.pool = factor == 4
        self.conv = ConvBNAct(in_channels, out_channels, 3, 2, activation_name="leaky")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool:
            x = F.max_pool2d(x, 3, stride=2, padding=1)
        return self.conv(x)


class ASFFUpsample(nn.Module):
    """ASFF resize of a coarser level: 1×1 conv+BN+leaky to the target channels, nearest ×factor."""

    def __init__(self, in_channels: int, out_channels: int, factor: int):
        super().__init__()
        self.factor = factor
        self.conv = ConvBNAct(in_channels, out_channels, 1, activation_name="leaky")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.conv(x), scale_factor=self.factor, mode="nearest")


def asff_resizer(in_channels: int, out_channels: int, source: int, target: int) -> nn.Module:
    """The module bringing level `source` to level `target` (level 0 = coarsest)."""
    if source == target:
        return nn.Identity()
    factor = 2 ** abs(source - target)
    if source < target:
        return ASFFUpsample(in_channels, out_channels, factor)
    return ASFFDownsample(in_channels, out_channels, factor)


class ASFF(nn.Module):
    """Adaptively spatial feature fusion at `level`: the three levels (coarsest first) resized to
    this level's size and channels, weighted per pixel by a softmax over three learned maps, summed,
    and expanded by a 3×3 conv+BN+leaky to `filters`."""

    def __init__(self, channels: tuple[int, int, int], level: int, filters: int, compress: int = 16):
        super().__init__()
        self.level = level
        inter = channels[level]
        self.resize = nn.ModuleList(asff_resizer(c, inter, source, level) for source, c in enumerate(channels))
        self.weight_convs = nn.ModuleList(ConvBNAct(inter, compress, 1, activation_name="leaky") for _ in channels)
        self.weight_levels = nn.Conv2d(3 * compress, 3, 1)
        self.expand = ConvBNAct(inter, filters, 3, activation_name="leaky")

    def forward(self, *levels: torch.Tensor) -> torch.Tensor:
        resized = [resize(x) for resize, x in zip(self.resize, levels)]
        logits = self.weight_levels(torch.cat([conv(x) for conv, x in zip(self.weight_convs, resized)], dim=1))
        weights = torch.softmax(logits, dim=1)
        fused = sum(x * weights[:, i : i + 1] for i, x in enumerate(resized))
        return self.expand(fused)


class SemanticEmbedding(nn.Module):
    """ExFuse semantic embedding branch: the high level's 3×3 conv, bilinearly upsampled ×2
    (aligned corners), multiplies the low level's 1×1 conv, injecting semantics into detail."""

    def __init__(self, high_channels: int, low_channels: int, filters: int):
        super().__init__()
        self.high = nn.Conv2d(high_channels, filters, 3, padding=1)
        self.low = nn.Conv2d(low_channels, filters, 1)

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(self.high(high), scale_factor=2, mode="bilinear", align_corners=True)
        return up * self.low(low)
