"""Darknet's resampling modules: pools with darknet's padding, upsample, reorg and crop."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import channels_last_only
from .darknet import Blur


def _lowest(x: torch.Tensor) -> float:
    """The pad value of darknet's pools: each window's maximum starts at −FLT_MAX and what lies
    outside the input is skipped, so a window that reads only padding gives −FLT_MAX. Half types
    cannot hold it (their pads are −inf)."""
    if x.dtype == torch.float32 or x.dtype == torch.float64:
        return -3.4028234663852886e38  # C's FLT_MAX (a literal: TorchScript reads no float globals)
    return float("-inf")


def _darknet_pad(padding: int) -> tuple[int, int, int, int]:
    """Darknet pools pad `padding // 2` on the left/top and the rest on the right/bottom."""
    before = padding // 2
    after = padding - before
    return (before, after, before, after)


def _darknet_size(n: int, size: int, stride: int, padding: int) -> int:
    """Darknet's pool output length: (n + padding − size) / stride + 1."""
    return (n + padding - size) // stride + 1


def _torch_size(n: int, size: int, stride: int, pad: int, ceil_mode: bool) -> int:
    """`max_pool2d`'s output length with `pad` on both sides (its rule for ceil mode included)."""
    span = n + 2 * pad - size
    out = (span + stride - 1) // stride + 1 if ceil_mode else span // stride + 1
    if ceil_mode and (out - 1) * stride >= n + pad:
        out -= 1
    return out


class MaxPool(nn.Module):
    """`[maxpool]`: darknet's padding (`padding` in all, `padding // 2` left/top, −FLT_MAX fill);
    with `antialiasing` the pool runs at stride 1 and a fixed blur applies the stride.

    Darknet's windows start `padding // 2` before the input and ignore whatever lies outside it,
    so when `max_pool2d` with that padding on both sides (in ceil mode or not) gives darknet's
    output size, its windows are darknet's and none reads only padding (where its own −inf fill
    would show): no padded copy is made. Otherwise (the
    right/bottom padding is read and larger than the left/top, or exceeds half the window) the input
    is padded explicitly."""

    def __init__(
        self,
        size: int,
        stride: tuple[int, int],
        padding: int,
        channels: int = 1,
        antialiasing: int = 0,
    ):
        super().__init__()
        self.size = size
        self.stride = (1, 1) if antialiasing else tuple(stride)
        self.pad = _darknet_pad(padding)
        self.blur = Blur(channels, stride, antialiasing) if antialiasing else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting() and _slices_pay(x):
            x = self._slice_pool(x)
        else:
            x = self._pool(x)
        return x if self.blur is None else self.blur(x)

    @torch.jit.unused
    def _slice_pool(self, x: torch.Tensor) -> torch.Tensor:
        """Darknet's max pool as the maximum of the window's strided slices, rows then columns:
        the same values, without the indices `max_pool2d` computes on CPU (1.2-3.4× the time on
        channels_last tensors, 15-26× on NCHW, measured on one AVX-512 machine). The input is padded
        with −FLT_MAX only where a window reads past it."""
        before, padding = self.pad[0], self.pad[0] + self.pad[1]
        h, w = int(x.shape[-2]), int(x.shape[-1])
        out_h = _darknet_size(h, self.size, self.stride[0], padding)
        out_w = _darknet_size(w, self.size, self.stride[1], padding)
        below = max(0, (out_h - 1) * self.stride[0] + self.size - before - h)
        right = max(0, (out_w - 1) * self.stride[1] + self.size - before - w)
        if before or below or right:
            x = F.pad(x, (before, right, before, below), value=_lowest(x))
        return _window_max(_window_max(x, -2, self.size, self.stride[0], out_h), -1, self.size, self.stride[1], out_w)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        """Darknet's max pool, through `max_pool2d`'s own padding where it gives darknet's windows."""
        before, after = self.pad[0], self.pad[1]
        padding = before + after
        if 2 * before <= self.size:
            h, w = int(x.shape[-2]), int(x.shape[-1])
            sh, sw = self.stride[0], self.stride[1]
            want_h, want_w = _darknet_size(h, self.size, sh, padding), _darknet_size(w, self.size, sw, padding)
            for ceil_mode in (False, True):
                if _torch_size(h, self.size, sh, before, ceil_mode) == want_h and (
                    _torch_size(w, self.size, sw, before, ceil_mode) == want_w
                ):
                    return F.max_pool2d(x, self.size, self.stride, before, ceil_mode=ceil_mode)
        return F.max_pool2d(F.pad(x, self.pad, value=_lowest(x)), self.size, self.stride)


def _slices_pay(x: torch.Tensor) -> bool:
    """Inference on a CPU tensor, eagerly: where `max_pool2d` is slower and slices are exact."""
    if x.device.type != "cpu" or x.dim() != 4:
        return False
    if x.requires_grad and torch.is_grad_enabled():
        return False  # autograd keeps max_pool2d's gradient (one winner per window, not a tie split)
    return not (torch.jit.is_tracing() or torch.compiler.is_compiling())


def _window_max(x: torch.Tensor, dim: int, size: int, stride: int, count: int) -> torch.Tensor:
    """out[i] = max(x[i·stride + j] for j < size) along `dim`, for i < count, as a new tensor.

    At stride 1 the window doubles (the max of neighbours, then of neighbouring pairs, ...), so a
    window of `size` takes about log2(size) maxima instead of size − 1 (overlapping halves do not
    change a maximum)."""
    dim %= x.dim()
    if size == 1:
        return _run(x, dim, 0, count, stride).clone()
    if stride > 1:
        out = torch.maximum(_run(x, dim, 0, count, stride), _run(x, dim, 1, count, stride))
        for j in range(2, size):
            torch.maximum(out, _run(x, dim, j, count, stride), out=out)
        return out
    offsets, covered = [], 1
    while covered * 2 <= size:
        offsets.append(covered)
        covered *= 2
    if covered < size:
        offsets.append(size - covered)
    length = count + size - 1
    for offset in offsets:
        length -= offset
        x = torch.maximum(_run(x, dim, 0, length), _run(x, dim, offset, length))
    return x


def _run(x: torch.Tensor, dim: int, start: int, length: int, step: int = 1) -> torch.Tensor:
    """`length` elements of `x` along `dim` from `start`, `step` apart (a view)."""
    return x[(slice(None),) * dim + (slice(start, start + (length - 1) * step + 1, step),)]


class MaxPoolDepth(nn.Module):
    """`[maxpool] maxpool_depth=1`: output channel g is the maximum of input channels
    g, g + out_channels, g + 2·out_channels, ... at each pixel."""

    def __init__(self, out_channels: int):
        super().__init__()
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = self.out_channels
        full = -(-c // g) * g
        if full != c:
            x = F.pad(x, (0, 0, 0, 0, 0, full - c), value=_lowest(x))
        return x.reshape(b, full // g, g, h, w).amax(dim=1)


class LocalAvgPool(nn.Module):
    """`[local_avgpool]`: average of the window's elements inside the image (padding excluded)."""

    def __init__(self, size: int, stride: tuple[int, int], padding: int):
        super().__init__()
        self.size = size
        self.stride = tuple(stride)
        self.pad = _darknet_pad(padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ones = torch.ones_like(x[:1, :1])
        if any(self.pad):
            x, ones = F.pad(x, self.pad), F.pad(ones, self.pad)
        total = F.avg_pool2d(x, self.size, self.stride, divisor_override=1)
        count = F.avg_pool2d(ones, self.size, self.stride, divisor_override=1)
        return total / count


class GlobalAvgPool(nn.Module):
    """`[avgpool]`: mean over height and width, giving C×1×1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)


class Upsample(nn.Module):
    """`[upsample]`: nearest-neighbour ×stride, times `scale`; a negative stride downsamples by
    summing each |stride|×|stride| block, times `scale` (darknet's upsample_cpu run backwards)."""

    def __init__(self, stride: int = 2, scale: float = 1.0):
        super().__init__()
        self.stride = stride
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 0 and channels_last_only(x):
            x = _repeat_pixels_channels_last(x, self.stride)
        elif self.stride > 0:
            x = x.repeat_interleave(self.stride, dim=2).repeat_interleave(self.stride, dim=3)
        else:
            s = -self.stride
            x = F.avg_pool2d(x, s, s, divisor_override=1)
        return x * self.scale if self.scale != 1.0 else x


def _repeat_pixels_channels_last(x: torch.Tensor, s: int) -> torch.Tensor:
    """Every pixel of a channels_last tensor repeated s×s, as one copy that stays channels_last
    (`repeat_interleave` makes two, and through NCHW order: 4-7× the time, measured)."""
    if s == 1:
        return x.clone()  # a tensor of its own, still channels_last
    n, c, h, w = x.shape
    pixels = x.permute(0, 2, 3, 1)[:, :, None, :, None, :].expand(n, h, s, w, s, c)
    return pixels.reshape(n, h * s, w * s, c).permute(0, 3, 1, 2)


class Reorg(nn.Module):
    """Darknet's reorg_cpu as a tensor permutation, for `[reorg]` and `[reorg3d]`.

    reorg_cpu(x, w, h, c, stride, forward) pairs element (k, j, i) of a c×h×w view with element
    (k mod c', j·s + (k div c') div s, i·s + (k div c') mod s) of a c'×(h·s)×(w·s) view, c' = c/s².
    With `forward=False` the output (c×h×w view) gathers from the input (c'×hs×ws view); with
    `forward=True` the output (c'×hs×ws view) receives the input (c×h×w view). `dims` is (c, h, w)
    as darknet passes them; `out_shape` is the layer's declared output shape, a view of the result.
    """

    def __init__(self, stride: int, dims: tuple[int, int, int], forward: bool, out_shape: tuple[int, int, int]):
        super().__init__()
        self.stride = stride
        self.dims = tuple(dims)
        self.scatter = forward
        self.out_shape = tuple(out_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        s = self.stride
        c, h, w = self.dims
        c2 = c // (s * s)
        if self.scatter:
            y = x.reshape(b, s, s, c2, h, w).permute(0, 3, 4, 1, 5, 2)
        else:
            y = x.reshape(b, c2, h, s, w, s).permute(0, 3, 5, 1, 2, 4)
        return y.reshape(b, *self.out_shape)


class Crop(nn.Module):
    """`[crop]` at inference: the centred crop_height × crop_width window (offsets rounded down),
    mapped to x·2 − 1 unless `noadjust` (then unchanged)."""

    def __init__(self, crop_height: int, crop_width: int, noadjust: bool = False):
        super().__init__()
        self.crop_height = crop_height
        self.crop_width = crop_width
        self.noadjust = noadjust

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top = (x.shape[2] - self.crop_height) // 2
        left = (x.shape[3] - self.crop_width) // 2
        x = x[:, :, top : top + self.crop_height, left : left + self.crop_width]
        return x if self.noadjust else x * 2 - 1
