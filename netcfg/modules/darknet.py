"""Modules with darknet's inference semantics, one per darknet layer type.

A module that owns darknet weights lists them in file order with `darknet_tensors()`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .activations import activation
from .common import fuse_conv_bn


class DarknetConv(nn.Module):
    """`[convolutional]`: convolution, optional batch norm (eps 1e-5), activation."""

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
    ):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            filters,
            size,
            stride=stride,
            padding=padding * dilation,
            dilation=dilation,
            groups=groups,
            bias=not batch_normalize,
        )
        self.bn = nn.BatchNorm2d(filters, eps=1e-5, momentum=0.01) if batch_normalize else None
        self.act = activation(activation_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x)

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
    overlap (darknet's mismatch rule), with optional learned weights, then an activation."""

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
        if self.weights_normalization == "relu":
            w = F.relu(w)
            return w / (w.sum(dim=0, keepdim=True) + 0.0001)
        if self.weights_normalization == "softmax":
            return torch.softmax(w, dim=0)
        return w

    def forward(self, x: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
        inputs = (x, *others)
        if self.weights is not None:
            w = self._normalized_weights()
            shape = (1, -1, 1, 1) if w.dim() == 2 else (1, 1, 1, 1)
            inputs = tuple(t * w[i].reshape(shape) for i, t in enumerate(inputs))
        out = inputs[0]
        channels = out.shape[1]
        for other in inputs[1:]:
            common = min(channels, other.shape[1])
            if common == channels:
                out = out + other[:, :channels]
            else:
                out = torch.cat([out[:, :common] + other, out[:, common:]], dim=1)
        return self.act(out)

    def darknet_tensors(self) -> list[torch.Tensor]:
        return [] if self.weights is None else [self.weights]


class MaxPool(nn.Module):
    """`[maxpool]`: darknet's padding (`padding` in all, `padding // 2` left/top, −inf fill)."""

    def __init__(self, size: int, stride: tuple[int, int], padding: int):
        super().__init__()
        self.size = size
        self.stride = tuple(stride)
        before = padding // 2
        after = padding - before
        self.pad = (before, after, before, after)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.pad):
            x = F.pad(x, self.pad, value=float("-inf"))
        return F.max_pool2d(x, self.size, self.stride)


class Upsample(nn.Module):
    """`[upsample]`: nearest-neighbour ×stride, times `scale`."""

    def __init__(self, stride: int = 2, scale: float = 1.0):
        super().__init__()
        self.stride = stride
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=self.stride, mode="nearest")
        return x * self.scale if self.scale != 1.0 else x


class Yolo(nn.Module):
    """`[yolo]`: in eval mode decodes predictions to (B, A·H·W, 5 + classes) with x, y, w, h in
    input pixels, then objectness and class scores; in train mode returns (B, A, H, W, 5 + classes)."""

    def __init__(
        self,
        anchors: tuple[tuple[float, float], ...],
        classes: int,
        net_size: tuple[int, int],
        scale_x_y: float = 1.0,
        new_coords: bool = False,
    ):
        super().__init__()
        self.classes = classes
        self.net_height, self.net_width = net_size
        self.scale_x_y = scale_x_y
        self.new_coords = new_coords
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32).reshape(-1, 2), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        a = self.anchors.shape[0]
        p = x.reshape(b, a, 5 + self.classes, h, w).permute(0, 1, 3, 4, 2)
        if self.training:
            return p
        xy, wh, rest = p[..., :2], p[..., 2:4], p[..., 4:]
        if not self.new_coords:
            xy, rest = torch.sigmoid(xy), torch.sigmoid(rest)
        xy = xy * self.scale_x_y - 0.5 * (self.scale_x_y - 1)
        gy, gx = torch.meshgrid(
            torch.arange(h, dtype=x.dtype, device=x.device),
            torch.arange(w, dtype=x.dtype, device=x.device),
            indexing="ij",
        )
        grid = torch.stack((gx, gy), dim=-1)
        cell = torch.tensor([self.net_width / w, self.net_height / h], dtype=x.dtype, device=x.device)
        xy = (xy + grid) * cell
        anchors = self.anchors.to(x.dtype).reshape(1, a, 1, 1, 2)
        wh = wh * wh * 4 * anchors if self.new_coords else torch.exp(wh) * anchors
        return torch.cat((xy, wh, rest), dim=-1).reshape(b, a * h * w, 5 + self.classes)
