"""Re-parameterisable convolutions: ACNet's asymmetric block and RefConv; `fuse()` collapses each into
one plain convolution equal to it in eval mode."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .activations import activation
from .common import ConvBNAct, fold_bn
from .conv import NormAct, conv_weight


def plain_conv(
    weight: torch.Tensor,
    bias: torch.Tensor,
    stride: tuple[int, int],
    padding: int | tuple[int, int],
    dilation: int,
    groups: int,
    activation_name: str,
) -> ConvBNAct:
    """One biased convolution + activation holding `weight` and `bias` (their dtype and device): the
    inference form of a re-parameterisable block."""
    filters, in_per_group, kh, kw = weight.shape
    fused = ConvBNAct(
        in_per_group * groups,
        filters,
        (kh, kw),
        stride=stride,
        padding=padding,
        groups=groups,
        dilation=dilation,
        batch_normalize=False,
        activation_name=activation_name,
        bias=True,
    ).to(weight.device, weight.dtype)
    with torch.no_grad():
        fused.conv.weight.copy_(weight)
        fused.conv.bias.copy_(bias)
    return fused


class AsymmetricConv(nn.Module):
    """ACNet block: k×k, 1×k and k×1 convolutions (each with its own batch norm) summed, then the
    activation; `fuse()` collapses the three into one k×k convolution."""

    def __init__(
        self,
        in_channels: int,
        filters: int,
        size: int,
        stride: tuple[int, int] = (1, 1),
        padding: int = 0,
        groups: int = 1,
        dilation: int = 1,
        batch_normalize: bool = True,
        activation_name: str = "logistic",
    ):
        super().__init__()
        self.padding, self.dilation, self.groups = padding, dilation, groups
        self.stride, self.activation_name = tuple(stride), activation_name
        self.centre = (size // 2) * dilation

        def branch(kernel: tuple[int, int]) -> ConvBNAct:
            return ConvBNAct(
                in_channels,
                filters,
                kernel,
                stride,
                padding=0,
                groups=groups,
                dilation=dilation,
                batch_normalize=batch_normalize,
                activation_name="linear",
            )

        self.square = branch((size, size))
        self.horizontal = branch((1, size))
        self.vertical = branch((size, 1))
        self.act = activation(activation_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, e = self.padding, self.centre
        if p:
            x = F.pad(x, (p, p, p, p))
        h, w = x.shape[-2:]
        out = self.square(x) + self.horizontal(x[:, :, e : h - e]) + self.vertical(x[:, :, :, e : w - e])
        return self.act(out)

    def fuse(self) -> ConvBNAct:
        """One k×k convolution (asymmetric kernels added onto its centre row and column) + activation."""
        with torch.no_grad():
            weight, bias = _conv_bn_kernel(self.square)
            horizontal, h_bias = _conv_bn_kernel(self.horizontal)
            vertical, v_bias = _conv_bn_kernel(self.vertical)
            c = weight.shape[-1] // 2
            weight = weight.clone()
            weight[:, :, c : c + 1, :] += horizontal
            weight[:, :, :, c : c + 1] += vertical
        fused = plain_conv(
            weight, bias + h_bias + v_bias, self.stride, self.padding, self.dilation, self.groups, self.activation_name
        )
        return fused.train(self.training)


def _conv_bn_kernel(block: ConvBNAct) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of a linear ConvBNAct with its batch norm folded in (eval-mode statistics)."""
    weight, bias = block.conv.weight.detach(), block.conv.bias
    if block.bn is not None:
        return fold_bn(weight, block.bn, bias)
    return weight, bias.detach() if bias is not None else weight.new_zeros(weight.shape[0])


class RefConv(nn.Module):
    """RefConv: a frozen base kernel W_b (a buffer) refocused by a learnable transformation,
    W = W_b + T(W_b), where T is a zero-initialised conv over W_b's 2-D kernels taken as channels,
    in groups of `groups` kernels (so a depthwise RefConv relates every channel's kernel to all the
    others); then bias or batch norm and the activation. `fuse()` leaves one plain convolution."""

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
        self.stride, self.padding, self.dilation, self.groups = tuple(stride), padding, dilation, groups
        self.activation_name = activation_name
        self.register_buffer("base", conv_weight(filters, in_channels // groups, size, size))
        kernels = filters * (in_channels // groups)
        map_size = 3 if size >= 3 else 1
        self.refocus = nn.Conv2d(
            kernels, kernels, map_size, padding=map_size // 2, groups=kernels // groups, bias=False
        )
        nn.init.zeros_(self.refocus.weight)
        self.tail = NormAct(filters, batch_normalize, activation_name)

    def kernel(self) -> torch.Tensor:
        """The refocused kernel W_b + T(W_b)."""
        f, c, kh, kw = self.base.shape
        return self.base + self.refocus(self.base.reshape(1, f * c, kh, kw)).reshape(f, c, kh, kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x, self.kernel(), None, self.stride, self.padding, self.dilation, self.groups)
        return self.tail(out)

    def fuse(self) -> ConvBNAct:
        """The equal plain convolution (batch norm folded) + activation."""
        with torch.no_grad():
            weight, bias = self.tail.fold(self.kernel())
        fused = plain_conv(
            weight, bias.detach(), self.stride, self.padding, self.dilation, self.groups, self.activation_name
        )
        return fused.train(self.training)
