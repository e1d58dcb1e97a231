"""Darknet's per-value modules: dropout, grouped softmax, LRN, batch norm, activation, pass-through."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .activations import activation


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
