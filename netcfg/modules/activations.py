"""Darknet activations by name, as modules.

These are the functions darknet's activations.h defines. Darknet's CPU code has bugs that are not
the format's meaning: `activate()` returns 0 for relu6, swish, mish, hard_mish and the
normalize_channels family outside the layers that special-case them ([convolutional], [shortcut]).
netcfg applies the intended function in every layer (relu6 = clamp to [0, 6]).

`activation(name, inplace=True)` gives, for the common ones (leaky, relu, logistic, swish, mish),
a module that overwrites its input when autograd does not need it (inference): for a layer's own
fresh output, which nothing else reads, this saves one allocation and one pass over memory.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Leaky(nn.Module):
    """Darknet's leaky ReLU: slope 0.1 for negative inputs (in place on request, without autograd)."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, 0.1, inplace=self.inplace and not x.requires_grad)


class Relu(nn.Module):
    """max(x, 0) (in place on request, without autograd)."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x, inplace=self.inplace and not x.requires_grad)


class Logistic(nn.Module):
    """1 / (1 + e^−x) (in place on request, without autograd)."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sigmoid_() if self.inplace and not x.requires_grad else torch.sigmoid(x)


class Swish(nn.Module):
    """x · sigmoid(x) (in place on request, without autograd)."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x, inplace=self.inplace and not x.requires_grad)


class Mish(nn.Module):
    """x · tanh(softplus(x)), with darknet's softplus threshold of 20 (the product in place on
    request, without autograd)."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.tanh(F.softplus(x, beta=1, threshold=20))
        return x.mul_(gate) if self.inplace and not x.requires_grad else x * gate


class HardMish(nn.Module):
    """Darknet's hard_mish: x·min(max(x+2, 0), 2)/2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.clamp(x + 2, 0, 2) / 2


class ReLU6(nn.Module):
    """Clamp to [0, 6] (darknet's CPU relu6 returns 0; this is the documented intent)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, 0, 6)


class Loggy(nn.Module):
    """2·sigmoid(x) − 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * torch.sigmoid(x) - 1


class Relie(nn.Module):
    """x for positive x, 0.01·x otherwise."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x > 0, x, 0.01 * x)


class Ramp(nn.Module):
    """x·(x > 0) + 0.1·x."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (x > 0) + 0.1 * x


class Plse(nn.Module):
    """Piecewise-linear sigmoid."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mid = 0.125 * x + 0.5
        return torch.where(x < -4, 0.01 * (x + 4), torch.where(x > 4, 0.01 * (x - 4) + 1, mid))


class Stair(nn.Module):
    """Darknet's stair: floor(x/2) for even floor(x), else (x − n) + floor(x/2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = torch.floor(x)
        odd = torch.remainder(n, 2) != 0
        return torch.where(odd, (x - n) + torch.floor(x / 2), torch.floor(x / 2))


class HardTan(nn.Module):
    """Clamp to [−1, 1]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, -1, 1)


class LHTan(nn.Module):
    """Leaky hard tanh: 0.001·x outside [0, 1], identity inside."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x < 0, 0.001 * x, torch.where(x > 1, 0.001 * (x - 1) + 1, x))


class Gelu(nn.Module):
    """Darknet's tanh approximation: 0.5·x·(1 + tanh(0.797885·x + 0.035677·x³))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1 + torch.tanh(0.797885 * x + 0.035677 * x**3))


class Selu(nn.Module):
    """Darknet's SELU constants (1.0507, 1.6732)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x >= 0, 1.0507 * x, 1.0507 * 1.6732 * (torch.exp(x) - 1))


class NormalizeChannels(nn.Module):
    """Darknet's per-pixel channel normalisation: relu(x) / (1e-4 + Σ relu(x)), or with `softmax`
    exp(x − m) / (1e-4 + Σ exp(x − m)) where m is the channel maximum (`maxval`) or 0."""

    def __init__(self, softmax: bool = False, maxval: bool = False):
        super().__init__()
        self.softmax = softmax
        self.maxval = maxval

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eps = 0.0001
        if not self.softmax:
            x = F.relu(x)
            return x / (x.sum(dim=1, keepdim=True) + eps)
        top = x.amax(dim=1, keepdim=True) if self.maxval else 0.0
        e = torch.exp(x - top)
        return e / (e.sum(dim=1, keepdim=True) + eps)


_FACTORIES = {
    "linear": nn.Identity,
    "logistic": Logistic,
    "loggy": Loggy,
    "relu": Relu,
    "elu": nn.ELU,
    "selu": Selu,
    "gelu": Gelu,
    "relie": Relie,
    "ramp": Ramp,
    "leaky": Leaky,
    "revleaky": Leaky,
    "tanh": nn.Tanh,
    "plse": Plse,
    "stair": Stair,
    "hardtan": HardTan,
    "lhtan": LHTan,
    "relu6": ReLU6,
    "swish": Swish,
    "mish": Mish,
    "hard_mish": HardMish,
    "normalize_channels": NormalizeChannels,
    "normalize_channels_softmax": lambda: NormalizeChannels(softmax=True),
    "normalize_channels_softmax_maxval": lambda: NormalizeChannels(softmax=True, maxval=True),
}


#: The activations that can overwrite their input.
_INPLACE = {"leaky", "revleaky", "relu", "logistic", "swish", "mish"}


def activation(name: str, inplace: bool = False) -> nn.Module:
    """The module for a darknet activation name (validated upstream); with `inplace`, one that may
    overwrite its input, for callers passing a tensor nothing else reads."""
    return _FACTORIES[name](inplace=True) if inplace and name in _INPLACE else _FACTORIES[name]()
