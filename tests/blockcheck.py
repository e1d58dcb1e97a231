"""Helpers for the plug-in block tests: tiny networks, random batch-norm statistics, and reference
implementations of the primitives (conv+BN+act from state_dict tensors, adaptive average pooling,
aligned-corner bilinear resizing) written out explicitly."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import netcfg

NET = "[net]\nwidth={w}\nheight={h}\nchannels={c}\n"
#: The SPP block of darknet's yolov3-spp.cfg, after the layer it pools.
DARKNET_SPP = """[maxpool]
stride=1
size=5

[route]
layers=-2

[maxpool]
stride=1
size=9

[route]
layers=-4

[maxpool]
stride=1
size=13

[route]
layers=-1,-3,-5,-6
"""

Act = Callable[[torch.Tensor], torch.Tensor] | None


def leaky(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x > 0, x, 0.1 * x)


def net_text(body: str, c: int = 8, h: int = 16, w: int = 16) -> str:
    return NET.format(c=c, h=h, w=w) + body


def build(body: str, c: int = 8, h: int = 16, w: int = 16) -> netcfg.Network:
    """A double-precision eval-mode network with random batch-norm statistics."""
    model = netcfg.build(net_text(body, c, h, w)).double()
    randomize_bn(model)
    return model


def randomize_bn(model: nn.Module) -> None:
    """Give every batch norm non-trivial statistics and affine parameters, so a reference that
    skips or misplaces one disagrees."""
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
            n = bn.num_features
            bn.running_mean.copy_(torch.randn(n, generator=gen) * 0.5)
            bn.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            bn.weight.copy_(torch.rand(n, generator=gen) + 0.5)
            bn.bias.copy_(torch.randn(n, generator=gen) * 0.3)


def conv_bn(
    x: torch.Tensor,
    sd: dict[str, torch.Tensor],
    prefix: str,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int = 1,
    groups: int = 1,
    act: Act = F.relu,
) -> torch.Tensor:
    """conv → eval-mode batch norm (eps 1e-5) → act, from `prefix.conv.*` and `prefix.bn.*` tensors."""
    y = F.conv2d(x, sd[f"{prefix}.conv.weight"], None, stride, padding, dilation, groups)
    mean, var = sd[f"{prefix}.bn.running_mean"], sd[f"{prefix}.bn.running_var"]
    gamma, beta = sd[f"{prefix}.bn.weight"], sd[f"{prefix}.bn.bias"]
    y = (y - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + 1e-5)
    y = y * gamma.view(1, -1, 1, 1) + beta.view(1, -1, 1, 1)
    return act(y) if act is not None else y


def adaptive_avg(x: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """Adaptive average pooling by its definition: bin i spans [floor(i·n/k), ceil((i+1)·n/k))."""
    h, w = x.shape[-2:]
    out = x.new_zeros(*x.shape[:-2], out_h, out_w)
    for i in range(out_h):
        top, bottom = (i * h) // out_h, math.ceil((i + 1) * h / out_h)
        for j in range(out_w):
            left, right = (j * w) // out_w, math.ceil((j + 1) * w / out_w)
            out[..., i, j] = x[..., top:bottom, left:right].mean(dim=(-2, -1))
    return out


def _aligned_coords(n_out: int, n_in: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source index pairs and weights for aligned-corner linear resizing along one axis."""
    pos = torch.zeros(n_out, dtype=torch.float64)
    if n_out > 1:
        pos = torch.arange(n_out, dtype=torch.float64) * (n_in - 1) / (n_out - 1)
    low = pos.floor().long().clamp(max=n_in - 1)
    high = (low + 1).clamp(max=n_in - 1)
    return low, high, pos - low


def bilinear_aligned(x: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """Bilinear resize with corners aligned: output pixel i samples input position i·(n−1)/(N−1)."""
    y0, y1, wy = _aligned_coords(out_h, x.shape[-2])
    x0, x1, wx = _aligned_coords(out_w, x.shape[-1])
    wy, wx = wy.view(-1, 1).to(x.dtype), wx.view(1, -1).to(x.dtype)
    top = x[..., y0, :][..., x0] * (1 - wx) + x[..., y0, :][..., x1] * wx
    bottom = x[..., y1, :][..., x0] * (1 - wx) + x[..., y1, :][..., x1] * wx
    return top * (1 - wy) + bottom * wy


def assert_every_parameter_gets_gradient(module: nn.Module, *inputs: torch.Tensor) -> None:
    """Train-mode forward and backward of a random projection of the output; every parameter must
    receive a non-zero gradient."""
    assert list(module.parameters()), "the module has no parameters"
    torch.manual_seed(0)
    module.train()
    out = module(*inputs)
    (out * torch.randn_like(out)).sum().backward()
    missing = [name for name, p in module.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches {missing}"


def single_error(text: str) -> netcfg.CfgItem:
    """The one CfgItem a bad cfg text produces."""
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.parse(text)
    assert len(exc.value.items) == 1, exc.value.items
    return exc.value.items[0]
