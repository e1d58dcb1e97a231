"""Convolution variants: deformable, coordinate, ghost, blur-pool, asymmetric (ACNet), BlazeBlock,
depthwise-separable, mixed-kernel, omni-dimensional dynamic and refocusing convolutions."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .activations import activation
from .common import DARKNET_BN_MOMENTUM, ConvBNAct, bn_scale_shift, constant, fold_bn
from .darknet import DarknetConv


def conv_weight(out_channels: int, in_per_group: int, kh: int, kw: int) -> torch.Tensor:
    """A kernel initialised as `nn.Conv2d` initialises its own (Kaiming uniform, a=√5)."""
    weight = torch.empty(out_channels, in_per_group, kh, kw)
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    return weight


class NormAct(nn.Module):
    """Batch norm (optional) then a darknet activation: the tail of the dynamic convolutions here,
    with a bias instead of the norm so fusing can fold the norm into their weights."""

    def __init__(self, filters: int, batch_normalize: bool, activation_name: str):
        super().__init__()
        self.bn = nn.BatchNorm2d(filters, eps=1e-5, momentum=DARKNET_BN_MOMENTUM) if batch_normalize else None
        self.bias = None if batch_normalize else nn.Parameter(torch.zeros(filters))
        self.act = activation(activation_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(x) if self.bn is not None else x + self.bias.reshape(1, -1, 1, 1)
        return self.act(x)

    def fold(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight scaled along dim −4, bias) equal to this tail's affine part; weights' output
        channels are their fourth-from-last dimension."""
        return (weight, self.bias) if self.bn is None else fold_bn(weight, self.bn)

    def drop_norm(self) -> None:
        """Replace the batch norm by an equal bias (call after scaling the weights by `fold`)."""
        if self.bn is not None:
            _, shift = bn_scale_shift(self.bn)
            self.bias = nn.Parameter(shift.detach().to(self.bn.bias.dtype))
            self.bn = None


class DeformConv(nn.Module):
    """Deformable convolution v1 (learned offsets) and v2 (offsets + sigmoid modulation): every
    kernel tap is sampled bilinearly at its offset position in one `grid_sample`, then contracted
    with the weights in one einsum. Offsets and modulation come from a zero-initialised conv."""

    def __init__(
        self,
        in_channels: int,
        filters: int,
        size: int,
        stride: tuple[int, int] = (1, 1),
        padding: int = 0,
        groups: int = 1,
        dilation: int = 1,
        deformable_groups: int = 1,
        version: int = 2,
        batch_normalize: bool = False,
        activation_name: str = "logistic",
    ):
        super().__init__()
        self.size, self.stride, self.padding, self.dilation = size, tuple(stride), padding, dilation
        self.groups, self.deformable_groups, self.modulated = groups, deformable_groups, version == 2
        taps = size * size
        self.weight = nn.Parameter(conv_weight(filters, in_channels // groups, size, size))
        self.offset = nn.Conv2d(
            in_channels,
            deformable_groups * taps * (3 if self.modulated else 2),
            size,
            stride=stride,
            padding=self.padding,
            dilation=dilation,
        )
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)
        self.tail = NormAct(filters, batch_normalize, activation_name)

    def _tap_positions(self, out_h: int, out_w: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Undeformed sampling rows (K, Ho, 1) and columns (K, 1, Wo) of every tap, row-major taps."""
        k, d, p = self.size, self.dilation, self.padding
        sy, sx = self.stride
        tap = torch.arange(k, dtype=like.dtype, device=like.device) * d
        tap_y, tap_x = tap.repeat_interleave(k), tap.repeat(k)
        rows = torch.arange(out_h, dtype=like.dtype, device=like.device) * sy - p
        cols = torch.arange(out_w, dtype=like.dtype, device=like.device) * sx - p
        return tap_y[:, None, None] + rows[None, :, None], tap_x[:, None, None] + cols[None, None, :]

    def sample(self, x: torch.Tensor, offsets: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Bilinearly sampled (and modulated) taps, (B, C, K, Ho, Wo); offsets (B, dg·K·2, Ho, Wo)
        hold (dy, dx) per tap and deformable group, mask (B, dg·K, Ho, Wo); zeros outside."""
        b, c, h, w = x.shape
        dg, taps = self.deformable_groups, self.size * self.size
        out_h, out_w = offsets.shape[-2:]
        rows, cols = self._tap_positions(out_h, out_w, x)
        offsets = offsets.reshape(b, dg, taps, 2, out_h, out_w)
        y = rows + offsets[:, :, :, 0]
        x_pos = cols + offsets[:, :, :, 1]
        grid = torch.stack(((2 * x_pos + 1) / w - 1, (2 * y + 1) / h - 1), dim=-1)
        grid = grid.reshape(b * dg, taps * out_h, out_w, 2)
        sampled = F.grid_sample(
            x.reshape(b * dg, c // dg, h, w), grid, mode="bilinear", padding_mode="zeros", align_corners=False
        ).reshape(b, dg, c // dg, taps, out_h, out_w)
        if mask is not None:
            sampled = sampled * mask.reshape(b, dg, 1, taps, out_h, out_w)
        return sampled.reshape(b, c, taps, out_h, out_w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dg_taps = self.deformable_groups * self.size * self.size
        predicted = self.offset(x)
        offsets = predicted[:, : 2 * dg_taps]
        mask = torch.sigmoid(predicted[:, 2 * dg_taps :]) if self.modulated else None
        return self.tail(self.deform(x, offsets, mask))

    def deform(self, x: torch.Tensor, offsets: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The deformable convolution itself (no bias, norm or activation) for given offsets/mask."""
        columns = self.sample(x, offsets, mask)
        b, c, taps, out_h, out_w = columns.shape
        g = self.groups
        filters = self.weight.shape[0]
        columns = columns.reshape(b, g, c // g, taps, out_h * out_w)
        weight = self.weight.reshape(g, filters // g, c // g, taps)
        return torch.einsum("bgckl,gfck->bgfl", columns, weight).reshape(b, filters, out_h, out_w)

    def fuse(self) -> DeformConv:
        """Fold the batch norm into the weights and a bias, in place; returns self."""
        weight, _ = self.tail.fold(self.weight)
        self.weight = nn.Parameter(weight.detach().clone())
        self.tail.drop_norm()
        return self


class AddCoords(nn.Module):
    """Append x and y coordinate channels in [−1, 1] (and the radius √(x²+y²)): CoordConv's input."""

    def __init__(self, with_r: bool = False):
        super().__init__()
        self.with_r = with_r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        xs = torch.linspace(-1, 1, w, dtype=x.dtype, device=x.device).reshape(1, 1, 1, w).expand(b, 1, h, w)
        ys = torch.linspace(-1, 1, h, dtype=x.dtype, device=x.device).reshape(1, 1, h, 1).expand(b, 1, h, w)
        coords = [xs, ys, torch.sqrt(xs * xs + ys * ys)] if self.with_r else [xs, ys]
        return torch.cat([x, *coords], dim=1)


class CoordConv(nn.Module):
    """CoordConv: coordinate channels appended, then a darknet convolution over them all."""

    def __init__(
        self,
        in_channels: int,
        filters: int,
        size: int,
        stride: tuple[int, int] = (1, 1),
        padding: int = 0,
        groups: int = 1,
        dilation: int = 1,
        batch_normalize: bool = False,
        activation_name: str = "logistic",
        with_r: bool = False,
    ):
        super().__init__()
        self.coords = AddCoords(with_r)
        coords = 3 if with_r else 2
        self.conv = DarknetConv(
            in_channels + coords, filters, size, stride, padding, groups, dilation, batch_normalize, activation_name
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.coords(x))


class Ghost(nn.Module):
    """GhostNet module: a primary conv makes ⌈filters/ratio⌉ maps, a cheap depthwise conv makes
    (ratio−1) "ghosts" of each; both concatenated and trimmed to `filters`."""

    def __init__(
        self,
        in_channels: int,
        filters: int,
        size: int = 1,
        ratio: int = 2,
        dw_size: int = 3,
        stride: int = 1,
        relu: bool = True,
    ):
        super().__init__()
        self.filters = filters
        primary = math.ceil(filters / ratio)
        act = "relu" if relu else "linear"
        self.primary = ConvBNAct(in_channels, primary, size, stride, padding=size // 2, activation_name=act)
        ghosts = primary * (ratio - 1)
        self.cheap = ConvBNAct(primary, ghosts, dw_size, 1, padding=dw_size // 2, groups=primary, activation_name=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.primary(x)
        return torch.cat([x, self.cheap(x)], dim=1)[:, : self.filters]


def binomial_filter(size: int) -> list[list[float]]:
    """The normalised 2-D binomial (Pascal's triangle row ⊗ itself) low-pass filter, size×size."""
    row = [math.comb(size - 1, i) for i in range(size)]
    total = sum(row) ** 2
    return [[a * b / total for b in row] for a in row]


class BlurPool(nn.Module):
    """Anti-aliased downsampling (Zhang 2019): pad, blur each channel with a binomial filter, subsample.
    The filter is fixed, so it is made in forward (no state to save or initialise)."""

    def __init__(self, channels: int, filt_size: int = 3, stride: int = 2, pad_type: str = "reflect"):
        super().__init__()
        self.channels, self.filt_size, self.stride = channels, filt_size, stride
        before = (filt_size - 1) // 2
        after = filt_size - 1 - before
        self.pad = [before, after, before, after]
        self.mode = "constant" if pad_type == "zero" else pad_type
        self.taps = binomial_filter(filt_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.filt_size > 1:
            x = F.pad(x, self.pad, mode=self.mode)
        kernel = constant(self.taps, x).expand(self.channels, 1, self.filt_size, self.filt_size)
        return F.conv2d(x, kernel, stride=self.stride, groups=self.channels)


class BlazeBlock(nn.Module):
    """BlazeFace BlazeBlock: depthwise k×k (+BN) and 1×1 (+BN) convs (twice, with a ReLU between,
    for the double block) added to a shortcut that is max-pooled when strided and zero-padded in
    channels, then ReLU."""

    def __init__(self, in_channels: int, filters: int, filters2: int | None = None, size: int = 5, stride: int = 1):
        super().__init__()
        out = filters2 if filters2 is not None else filters
        self.extra_channels = out - in_channels
        self.pool = nn.MaxPool2d(stride, stride, ceil_mode=True) if stride > 1 else None
        layers = [
            ConvBNAct(in_channels, in_channels, size, stride, groups=in_channels, activation_name="linear"),
            ConvBNAct(in_channels, filters, 1, activation_name="linear" if filters2 is None else "relu"),
        ]
        if filters2 is not None:
            layers += [
                ConvBNAct(filters, filters, size, 1, groups=filters, activation_name="linear"),
                ConvBNAct(filters, filters2, 1, activation_name="linear"),
            ]
        self.branch = nn.Sequential(*layers)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.pool(x) if self.pool is not None else x
        if self.extra_channels:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.extra_channels))
        return self.act(self.branch(x) + shortcut)


class DepthwiseSeparable(nn.Module):
    """Depthwise k×k conv + BN + activation, then pointwise 1×1 conv + BN + activation."""

    def __init__(
        self,
        in_channels: int,
        filters: int,
        size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        batch_normalize: bool = True,
        activation_name: str = "relu",
    ):
        super().__init__()
        self.depthwise = ConvBNAct(
            in_channels,
            in_channels,
            size,
            stride,
            dilation=dilation,
            groups=in_channels,
            batch_normalize=batch_normalize,
            activation_name=activation_name,
        )
        self.pointwise = ConvBNAct(
            in_channels, filters, 1, batch_normalize=batch_normalize, activation_name=activation_name
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class MixConv(nn.Module):
    """MixConv: one 'same'-padded convolution per kernel size, outputs concatenated. Full convs each
    make `splits[i]` output channels; depthwise ones each take `splits[i]` input channels (with the
    channel multiplier filters/in_channels)."""

    def __init__(
        self,
        in_channels: int,
        filters: int,
        sizes: tuple[int, ...],
        splits: tuple[int, ...],
        stride: int = 1,
        depthwise: bool = False,
    ):
        super().__init__()
        self.splits = tuple(splits) if depthwise else None
        multiplier = filters // in_channels

        def conv(size: int, split: int) -> nn.Conv2d:
            if depthwise:
                return nn.Conv2d(split, split * multiplier, size, stride, size // 2, groups=split)
            return nn.Conv2d(in_channels, split, size, stride, size // 2)

        self.convs = nn.ModuleList(conv(k, n) for k, n in zip(sizes, splits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.splits, dim=1) if self.splits else [x] * len(self.convs)
        return torch.cat([conv(part) for conv, part in zip(self.convs, parts)], dim=1)
