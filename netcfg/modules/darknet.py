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
        self.act = activation(activation_name, inplace=True)  # it only sees this layer's own new output
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

    @torch.jit.unused  # variadic: TorchScript cannot compile it; generated code writes routes inline
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

    @torch.jit.unused  # variadic: TorchScript cannot compile it; generated code writes plain sums inline
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
