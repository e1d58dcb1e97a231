"""Shared by the `conv` family tests: tiny networks, random batch-norm statistics, and explicit
batch norm, convolution and darknet window arithmetic to check them against. Importing it seeds
torch's global generator, which the tests draw their inputs from."""

from __future__ import annotations

import torch
from torch import nn

import netcfg

torch.manual_seed(0)


def build(body: str, channels: int = 4, height: int = 8, width: int = 8) -> netcfg.Network:
    return netcfg.build(f"[net]\nwidth={width}\nheight={height}\nchannels={channels}\n{body}")


def randomize_norms(model: nn.Module) -> None:
    """Non-trivial batch-norm statistics and affine parameters, so folding them is really tested."""
    gen = torch.Generator().manual_seed(1)
    for bn in model.modules():
        if isinstance(bn, nn.BatchNorm2d):
            n = bn.num_features
            bn.running_mean.copy_(torch.randn(n, generator=gen) * 0.5)
            bn.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            with torch.no_grad():
                bn.weight.copy_(torch.randn(n, generator=gen))
                bn.bias.copy_(torch.randn(n, generator=gen))


def norm(y: torch.Tensor, state: dict, prefix: str, eps: float = 1e-5) -> torch.Tensor:
    """Eval-mode batch norm written out from a state dict."""

    def per_channel(name: str) -> torch.Tensor:
        return state[f"{prefix}.{name}"].reshape(1, -1, 1, 1)

    return (y - per_channel("running_mean")) / torch.sqrt(per_channel("running_var") + eps) * per_channel(
        "weight"
    ) + per_channel("bias")


def explicit_conv(
    x: torch.Tensor, weight: torch.Tensor, stride: tuple[int, int] = (1, 1), dilation: int = 1, groups: int = 1
) -> torch.Tensor:
    """Unpadded convolution as a loop over output positions (each a sum over one input window)."""
    b, c, h, w = x.shape
    f, cg, kh, kw = weight.shape
    out_h = (h - dilation * (kh - 1) - 1) // stride[0] + 1
    out_w = (w - dilation * (kw - 1) - 1) // stride[1] + 1
    out = x.new_zeros(b, f, out_h, out_w)
    per_group = f // groups
    for i in range(out_h):
        for j in range(out_w):
            y0, x0 = i * stride[0], j * stride[1]
            window = x[:, :, y0 : y0 + dilation * (kh - 1) + 1 : dilation, x0 : x0 + dilation * (kw - 1) + 1 : dilation]
            for g in range(groups):
                part = window[:, g * cg : (g + 1) * cg]
                kernels = weight[g * per_group : (g + 1) * per_group]
                out[:, g * per_group : (g + 1) * per_group, i, j] = torch.einsum("bckl,fckl->bf", part, kernels)
    return out


def cfg_keys(keys: str) -> dict[str, str]:
    """The `key=value` lines of a section body."""
    return dict(line.split("=", 1) for line in keys.split("\n") if line)


def darknet_window(keys: str) -> tuple[tuple[int, int], int, int, int]:
    """(strides (y, x), padding in pixels, dilation, groups) of a convolution with these keys, by
    darknet's parse_convolutional: stride_x/stride_y fall back to stride, pad=1 means size/2,
    size 1 means dilation 1, and the convolution pads pad·dilation pixels (im2col_cpu_ext)."""
    v = {k: int(x) for k, x in cfg_keys(keys).items() if x.lstrip("-").isdigit()}
    stride = v.get("stride", 1)
    strides = (v.get("stride_y", stride), v.get("stride_x", stride))
    size = v.get("size", 1)
    dilation = 1 if size == 1 else v.get("dilation", 1)
    pad = size // 2 if v.get("pad") else v.get("padding", 0)
    return strides, pad * dilation, dilation, v.get("groups", 1)


def assert_gradients_reach_every_parameter(model: nn.Module, x: torch.Tensor) -> None:
    model.train()
    out = model(x)
    (out * torch.randn_like(out)).sum().backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"
