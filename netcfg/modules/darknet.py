"""Modules with darknet's inference semantics, one per darknet layer type.

Each follows the forward function of darknet's `*_layer.c` (AlexeyAB's fork), including its index
arithmetic where that is not the "obvious" operation (`[reorg]`, `[lrn]`, `[upsample]` with a negative
stride). A module that owns darknet weights lists them in file order with `darknet_tensors()`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .activations import activation
from .common import DARKNET_BN_MOMENTUM, constant, fuse_conv_bn

#: Darknet's fixed anti-aliasing kernels (make_convolutional_layer / make_maxpool_layer).
BLUR_KERNELS = {
    1: ((1.0, 2.0, 1.0), (2.0, 4.0, 2.0), (1.0, 2.0, 1.0)),
    2: ((1.0, 1.0), (1.0, 1.0)),
}


class Blur(nn.Module):
    """Darknet's anti-aliasing: a fixed depthwise blur (3×3 binomial / 16, pad 1, or 2×2 box / 4,
    pad 0), linear, applied with the host layer's stride. Its weights are never in .weights files
    and never change, so forward makes them (nothing to save or initialise)."""

    def __init__(self, channels: int, stride: tuple[int, int], mode: int = 1):
        super().__init__()
        total = sum(sum(row) for row in BLUR_KERNELS[mode])
        self.taps = [[v / total for v in row] for row in BLUR_KERNELS[mode]]
        self.size = len(self.taps)
        self.stride = tuple(stride)
        self.padding = 1 if mode == 1 else 0
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = constant(self.taps, x).expand(self.channels, 1, self.size, self.size)
        return F.conv2d(x, kernel, None, self.stride, self.padding, 1, self.channels)


def binarize_weights(w: torch.Tensor) -> torch.Tensor:
    """Darknet's binarize_weights: each filter becomes ±mean(|w|), + where w > 0."""
    mean = w.abs().flatten(1).mean(dim=1).reshape(w.shape[:1] + (1,) * (w.dim() - 1))
    return torch.where(w > 0, mean, -mean)


class DarknetConv(nn.Module):
    """`[convolutional]`: convolution, optional batch norm (eps 1e-5), activation; with
    `antialiasing` the convolution runs at stride 1 and a fixed blur applies the stride."""

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
        antialiasing: int = 0,
        binary: bool = False,
        xnor: bool = False,
    ):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            filters,
            size,
            stride=(1, 1) if antialiasing else stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=not batch_normalize,
        )
        self.bn = nn.BatchNorm2d(filters, eps=1e-5, momentum=DARKNET_BN_MOMENTUM) if batch_normalize else None
        self.act = activation(activation_name)
        self.blur = Blur(filters, stride, antialiasing) if antialiasing else None
        self.binary = binary or xnor
        self.xnor = xnor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.binary:
            x = self._binary_conv(x)
        else:
            x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        x = self.act(x)
        return x if self.blur is None else self.blur(x)

    def _binary_conv(self, x: torch.Tensor) -> torch.Tensor:
        """XNOR-net convolution: ±mean(|w|) weights; with `xnor` also ±1 inputs (zero padding kept)."""
        if self.xnor:
            x = torch.where(x > 0, 1.0, -1.0).to(x.dtype)
        c = self.conv
        return F.conv2d(x, binarize_weights(c.weight), c.bias, c.stride, c.padding, c.dilation, c.groups)

    def fuse(self) -> DarknetConv:
        """Fold the batch norm into the convolution for inference, in place; returns self."""
        if self.bn is not None:
            self.conv = fuse_conv_bn(self.conv, self.bn)
            self.bn = None
        return self

    def darknet_tensors(self) -> list[torch.Tensor]:
        if self.bn is None:
            return [self.conv.bias, self.conv.weight]
        bn = self.bn
        return [bn.bias, bn.weight, bn.running_mean, bn.running_var, self.conv.weight]


class Route(nn.Module):
    """`[route]`: take channel group `group_id` of `groups` from each input, then concatenate."""

    def __init__(self, groups: int = 1, group_id: int = 0):
        super().__init__()
        self.groups = groups
        self.group_id = group_id

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if self.groups > 1:
            xs = tuple(x.chunk(self.groups, dim=1)[self.group_id] for x in xs)
        return xs[0] if len(xs) == 1 else torch.cat(xs, dim=1)


class Shortcut(nn.Module):
    """`[shortcut]`: add other layers' outputs to the previous one, channel by channel where they
    overlap (darknet's mismatch rule), with optional learned weights, then an activation.

    Weights (darknet's shortcut_multilayer_cpu) are one per input (`per_feature`) or one per input
    and channel of the previous layer (`per_channel`), input 0 being the previous layer. `relu`
    normalisation uses relu(w) / (1e-4 + Σ relu(w)), `softmax` exp(w − max) / (1e-4 + Σ exp(w − max)),
    the sums running over the inputs."""

    def __init__(
        self,
        channels: tuple[int, ...],
        weights_type: str = "none",
        weights_normalization: str = "none",
        activation_name: str = "linear",
    ):
        super().__init__()
        self.channels = tuple(channels)
        self.weights_type = weights_type
        self.weights_normalization = weights_normalization
        n = len(channels)
        if weights_type == "per_feature":
            self.weights = nn.Parameter(torch.ones(n))
        elif weights_type == "per_channel":
            self.weights = nn.Parameter(torch.ones(n, channels[0]))
        else:
            self.weights = None
        self.act = activation(activation_name)

    def _normalized_weights(self) -> torch.Tensor:
        w = self.weights
        eps = 0.0001
        if self.weights_normalization == "relu":
            w = F.relu(w)
            return w / (eps + w.sum(dim=0, keepdim=True))
        if self.weights_normalization == "softmax":
            e = torch.exp(w - w.amax(dim=0, keepdim=True))
            return e / (eps + e.sum(dim=0, keepdim=True))
        return w

    def forward(self, x: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        w = self._normalized_weights() if self.weights is not None else None
        out = x if w is None else x * _channel_weight(w[0], channels)
        for i, other in enumerate(others, start=1):
            common = min(channels, other.shape[1])
            add = other[:, :common]
            if w is not None:
                add = add * _channel_weight(w[i], common)
            if common < channels:
                add = F.pad(add, (0, 0, 0, 0, 0, channels - common))
            out = out + add
        return self.act(out)

    def darknet_tensors(self) -> list[torch.Tensor]:
        return [] if self.weights is None else [self.weights]


def _channel_weight(w: torch.Tensor, channels: int) -> torch.Tensor:
    """A scalar or per-channel weight shaped to broadcast over (B, channels, H, W)."""
    return w.reshape(1, 1, 1, 1) if w.dim() == 0 else w[:channels].reshape(1, channels, 1, 1)


def _darknet_pad(padding: int) -> tuple[int, int, int, int]:
    """Darknet pools pad `padding // 2` on the left/top and the rest on the right/bottom."""
    before = padding // 2
    after = padding - before
    return (before, after, before, after)


class MaxPool(nn.Module):
    """`[maxpool]`: darknet's padding (`padding` in all, `padding // 2` left/top, −inf fill);
    with `antialiasing` the pool runs at stride 1 and a fixed blur applies the stride."""

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
        if any(self.pad):
            x = F.pad(x, self.pad, value=float("-inf"))
        x = F.max_pool2d(x, self.size, self.stride)
        return x if self.blur is None else self.blur(x)


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
            x = F.pad(x, (0, 0, 0, 0, 0, full - c), value=float("-inf"))
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
        if self.stride > 0:
            x = x.repeat_interleave(self.stride, dim=2).repeat_interleave(self.stride, dim=3)
        else:
            s = -self.stride
            x = F.avg_pool2d(x, s, s, divisor_override=1)
        return x * self.scale if self.scale != 1.0 else x


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


class Connected(nn.Module):
    """`[connected]`: fully connected on the flattened C·H·W input, optional batch norm
    (eps 1e-5), activation; output shaped (outputs, 1, 1)."""

    def __init__(self, inputs: int, outputs: int, batch_normalize: bool = False, activation_name: str = "logistic"):
        super().__init__()
        self.linear = nn.Linear(inputs, outputs, bias=not batch_normalize)
        self.bn = nn.BatchNorm1d(outputs, eps=1e-5, momentum=0.05) if batch_normalize else None
        self.act = activation(activation_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x.flatten(1))
        if self.bn is not None:
            y = self.bn(y)
        return self.act(y[:, :, None, None])

    def darknet_tensors(self) -> list[torch.Tensor]:
        if self.bn is None:
            return [self.linear.bias, self.linear.weight]
        bn = self.bn
        return [bn.bias, self.linear.weight, bn.weight, bn.running_mean, bn.running_var]


class Dropout(nn.Module):
    """`[dropout]`: identity at inference (darknet reuses the previous layer's output); in
    training zeroes with `probability` and scales the rest by 1 / (1 − probability)."""

    def __init__(self, probability: float = 0.2):
        super().__init__()
        self.probability = probability

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.probability, self.training)


class Softmax(nn.Module):
    """`[softmax]`: softmax of x / temperature over each of `groups` equal, contiguous slices of
    the flattened C·H·W input (darknet's softmax_cpu)."""

    def __init__(self, groups: int = 1, temperature: float = 1.0):
        super().__init__()
        self.groups = groups
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], self.groups, -1)
        return torch.softmax(flat / self.temperature, dim=-1).reshape(x.shape)


class ScaleChannels(nn.Module):
    """`[scale_channels]`: the `from` layer's output times the previous layer's C×1×1 (or, with
    `scale_wh`, 1×H×W) output, then an activation."""

    def __init__(self, activation_name: str = "linear"):
        super().__init__()
        self.act = activation(activation_name)

    def forward(self, scale: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.act(x * scale)


class Sam(nn.Module):
    """`[sam]`: element-wise product of the previous layer and the `from` layer, then an activation."""

    def __init__(self, activation_name: str = "linear"):
        super().__init__()
        self.act = activation(activation_name)

    def forward(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        return self.act(x * other)


class LRN(nn.Module):
    """`[lrn]`: x · (kappa + alpha · S)^(−beta), darknet's forward_normalization_layer.

    S is the sum of x² over channels k − (size−1)//2 .. k + size//2 (clipped to the image) minus
    x² of channel size//2: darknet's running sum starts from channels 0 .. size//2 − 1 and never adds
    channel size//2, on CPU and GPU alike. alpha is not divided by size."""

    def __init__(self, size: int = 5, alpha: float = 0.0001, beta: float = 0.75, kappa: float = 1.0):
        super().__init__()
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.kappa = kappa

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sq = x * x
        before, after = (self.size - 1) // 2, self.size // 2
        padded = F.pad(sq, (0, 0, 0, 0, before, after))
        window = padded[:, : x.shape[1]]
        for i in range(1, self.size):
            window = window + padded[:, i : i + x.shape[1]]
        skipped = sq[:, self.size // 2 : self.size // 2 + 1]
        return x * (self.kappa + self.alpha * (window - skipped)) ** (-self.beta)


class DarknetBatchNorm(nn.Module):
    """`[batchnorm]`: batch norm with darknet's eps 1e-5 (rolling statistics at inference)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x)

    def darknet_tensors(self) -> list[torch.Tensor]:
        bn = self.bn
        return [bn.bias, bn.weight, bn.running_mean, bn.running_var]


class Activation(nn.Module):
    """`[activation]`: a darknet activation applied to the previous layer."""

    def __init__(self, activation_name: str = "linear"):
        super().__init__()
        self.act = activation(activation_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x)


class Empty(nn.Module):
    """`[empty]`/`[silence]`: passes the previous layer through."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


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
