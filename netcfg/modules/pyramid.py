"""Multi-scale pooling blocks: YOLOv3 SPP, DeepLab ASPP, PSPNet PPM and SPNet strip pooling."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import ConvBNAct


def spp_max_pool(x: torch.Tensor, size: int) -> torch.Tensor:
    """Stride-1 max pool with darknet's padding: size−1 in all, (size−1)//2 left/top, −inf fill."""
    before = (size - 1) // 2
    after = size - 1 - before
    if size > 1:
        x = F.pad(x, (before, after, before, after), value=float("-inf"))
    return F.max_pool2d(x, size, 1)


def bilinear_aligned(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize with aligned corners, as PSPNet and SPNet resize their pooled maps."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class SPP(nn.Module):
    """YOLOv3-SPP: stride-1 max pools of each size (in `sizes` order), then the input, concatenated.

    With `fast`, sizes are reached by chaining smaller pools (SPPF): for odd sizes a pool of a then
    b equals one pool of a+b−1, so the output is the same at less cost.
    """

    def __init__(self, sizes: tuple[int, ...], fast: bool = False):
        super().__init__()
        self.sizes = tuple(sizes)
        self.fast = fast
        self.ascending = tuple(sorted(set(self.sizes)))
        self.chain = tuple(s - prev + 1 for prev, s in zip((1, *self.ascending), self.ascending))

    def _pools(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """Each distinct size's pooled map; chained, the k-th step reaches the k-th smallest size."""
        if not self.fast:
            return {s: spp_max_pool(x, s) for s in self.ascending}
        pooled = {}
        for size, step in zip(self.ascending, self.chain):
            x = spp_max_pool(x, step)
            pooled[size] = x
        return pooled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self._pools(x)
        return torch.cat([pooled[s] for s in self.sizes] + [x], dim=1)


class ASPPImagePooling(nn.Module):
    """ASPP image-level branch: global average, 1×1 conv+BN+ReLU, spread back over H×W."""

    def __init__(self, in_channels: int, filters: int):
        super().__init__()
        self.conv = ConvBNAct(in_channels, filters, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x.mean(dim=(2, 3), keepdim=True))
        return y.expand(-1, -1, x.shape[2], x.shape[3])


def aspp_atrous_branch(in_channels: int, filters: int, rate: int, separable: bool) -> nn.Module:
    """3×3 atrous conv+BN+ReLU, or its DeepLabv3+ separable form (depthwise, then pointwise)."""
    if not separable:
        return ConvBNAct(in_channels, filters, 3, dilation=rate)
    return nn.Sequential(
        ConvBNAct(in_channels, in_channels, 3, dilation=rate, groups=in_channels),
        ConvBNAct(in_channels, filters, 1),
    )


class ASPP(nn.Module):
    """DeepLabv3 atrous spatial pyramid pooling: 1×1, one atrous branch per rate and the optional
    image-pooling branch, concatenated in that order and projected by 1×1 conv+BN+ReLU."""

    def __init__(
        self,
        in_channels: int,
        filters: int = 256,
        rates: tuple[int, ...] = (6, 12, 18),
        image_pooling: bool = True,
        separable: bool = False,
    ):
        super().__init__()
        branches = [ConvBNAct(in_channels, filters, 1)]
        branches += [aspp_atrous_branch(in_channels, filters, r, separable) for r in rates]
        if image_pooling:
            branches.append(ASPPImagePooling(in_channels, filters))
        self.branches = nn.ModuleList(branches)
        self.project = ConvBNAct(len(branches) * filters, filters, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.branches], dim=1))


class PPM(nn.Module):
    """PSPNet pyramid pooling: per bin size, adaptive average pool, 1×1 conv+BN+ReLU and bilinear
    upsampling; the input comes first in the concatenation."""

    def __init__(self, in_channels: int, filters: int, sizes: tuple[int, ...] = (1, 2, 3, 6)):
        super().__init__()
        self.sizes = tuple(sizes)
        self.stages = nn.ModuleList(ConvBNAct(in_channels, filters, 1) for _ in self.sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = (x.shape[2], x.shape[3])
        pooled = [
            bilinear_aligned(stage(F.adaptive_avg_pool2d(x, s)), size) for s, stage in zip(self.sizes, self.stages)
        ]
        return torch.cat([x, *pooled], dim=1)


class StripPooling(nn.Module):
    """SPNet strip pooling module: a square-pool path (local 3×3 plus two pooled grids) and a strip
    path (1×W and H×1 averages), each fused by 3×3 conv, joined by 1×1 conv, added to the input."""

    def __init__(self, in_channels: int, pool_size: tuple[int, int] = (20, 12)):
        super().__init__()
        inter = in_channels // 4
        self.pool_size = tuple(pool_size)
        self.reduce_square = ConvBNAct(in_channels, inter, 1)
        self.reduce_strip = ConvBNAct(in_channels, inter, 1)
        self.local = ConvBNAct(inter, inter, 3, activation_name="linear")
        self.pooled = nn.ModuleList(ConvBNAct(inter, inter, 3, activation_name="linear") for _ in self.pool_size)
        self.row = ConvBNAct(inter, inter, (1, 3), activation_name="linear")
        self.column = ConvBNAct(inter, inter, (3, 1), activation_name="linear")
        self.fuse_square = ConvBNAct(inter, inter, 3)
        self.fuse_strip = ConvBNAct(inter, inter, 3)
        self.project = ConvBNAct(2 * inter, in_channels, 1, activation_name="linear")

    def _grid_convs(self) -> list[tuple[int, nn.Module]]:
        return list(zip(self.pool_size, self.pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        square, strip = self.reduce_square(x), self.reduce_strip(x)
        grids = [bilinear_aligned(conv(F.adaptive_avg_pool2d(square, s)), (h, w)) for s, conv in self._grid_convs()]
        square = self.fuse_square(F.relu(self.local(square) + sum(grids)))
        rows = bilinear_aligned(self.row(F.adaptive_avg_pool2d(strip, (1, w))), (h, w))
        columns = bilinear_aligned(self.column(F.adaptive_avg_pool2d(strip, (h, 1))), (h, w))
        strip = self.fuse_strip(F.relu(rows + columns))
        return F.relu(x + self.project(torch.cat([square, strip], dim=1)))
