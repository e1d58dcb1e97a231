"""Shared by the attention section tests: tiny networks, random weights everywhere, and eval-mode
batch norm from a state dict."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import netcfg


def cfg(body: str, c: int = 8, h: int = 6, w: int = 6) -> str:
    return f"[net]\nwidth={w}\nheight={h}\nchannels={c}\n{body}"


def build(body: str, c: int = 8, h: int = 6, w: int = 6) -> netcfg.Network:
    return netcfg.build(cfg(body, c, h, w))


def randomize(module: torch.nn.Module, seed: int = 0) -> None:
    """Random weights everywhere (positive running variances), so no zero-initialised part hides."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=gen) * 0.5)


def randomized(body: str, c: int = 8, h: int = 6, w: int = 6, seed: int = 0):
    """(network, its only block's state dict, a random input)."""
    model = build(body, c, h, w)
    randomize(model, seed)
    x = torch.randn(2, c, h, w, generator=torch.Generator().manual_seed(seed + 1))
    return model, model.layers[0].state_dict(), x


def bn(x: torch.Tensor, sd: dict, prefix: str) -> torch.Tensor:
    """Eval-mode batch norm from a state dict (eps 1e-5)."""
    p = prefix + "."
    return F.batch_norm(
        x, sd[p + "running_mean"], sd[p + "running_var"], sd[p + "weight"], sd[p + "bias"], False, 0.0, 1e-5
    )
