"""Omni-dimensional dynamic convolution (ODConv, Li et al. 2022): attention over kernels and along
every dimension of the kernel space, for each input."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .conv import NormAct, conv_weight


class ODAttention(nn.Module):
    """ODConv's attention: global average pool → FC → ReLU → four heads: input-channel, output-
    channel (filter) and spatial attentions (sigmoid) and the kernel attention (softmax over kernels)."""

    def __init__(self, in_channels: int, filters: int, size: int, kernel_num: int, reduction: float):
        super().__init__()
        hidden = max(int(in_channels * reduction), 16)
        self.squeeze = nn.Linear(in_channels, hidden)
        self.channel = nn.Linear(hidden, in_channels)
        self.filter = nn.Linear(hidden, filters)
        self.spatial = nn.Linear(hidden, size * size)
        self.kernel = nn.Linear(hidden, kernel_num) if kernel_num > 1 else None
        self.size = size

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(channel (B, C), filter (B, F), spatial (B, k, k), kernel (B, n)) attentions."""
        z = F.relu(self.squeeze(x.mean(dim=(2, 3))))
        spatial = torch.sigmoid(self.spatial(z)).reshape(-1, self.size, self.size)
        kernel = torch.softmax(self.kernel(z), dim=1) if self.kernel is not None else z.new_ones(z.shape[0], 1)
        return torch.sigmoid(self.channel(z)), torch.sigmoid(self.filter(z)), spatial, kernel


class ODConv(nn.Module):
    """Omni-dimensional dynamic convolution: per sample, the kernel is Σᵢ αₖᵢ·(αₛ ⊙ Wᵢ), the input
    is scaled by the input-channel attention and the output by the filter attention."""

    def __init__(
        self,
        in_channels: int,
        filters: int,
        size: int,
        stride: tuple[int, int] = (1, 1),
        padding: int = 0,
        groups: int = 1,
        dilation: int = 1,
        kernel_num: int = 4,
        reduction: float = 0.0625,
        batch_normalize: bool = False,
        activation_name: str = "logistic",
    ):
        super().__init__()
        self.stride, self.padding, self.dilation, self.groups = tuple(stride), padding, dilation, groups
        self.attention = ODAttention(in_channels, filters, size, kernel_num, reduction)
        kernels = [conv_weight(filters, in_channels // groups, size, size) for _ in range(kernel_num)]
        self.weight = nn.Parameter(torch.stack(kernels))
        self.tail = NormAct(filters, batch_normalize, activation_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        channel, filter_, spatial, kernel = self.attention(x)
        weight = torch.einsum("bn,nfchw->bfchw", kernel, self.weight) * spatial[:, None, None]
        out = F.conv2d(
            (x * channel[:, :, None, None]).reshape(1, b * c, h, w),
            weight.reshape(-1, *weight.shape[2:]),
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=b * self.groups,
        )
        out = out.reshape(b, -1, *out.shape[-2:]) * filter_[:, :, None, None]
        return self.tail(out)

    def fuse(self) -> ODConv:
        """Fold the batch norm into every candidate kernel and a bias, in place; returns self."""
        weight, _ = self.tail.fold(self.weight)
        self.weight = nn.Parameter(weight.detach().clone())
        self.tail.drop_norm()
        return self
