"""Small building blocks shared by the block families: the conv → norm → activation module and
batch-norm folding, the one place every `fuse()` gets its arithmetic from.

Conv-norm-activation modules (`ConvBNAct`, `NormAct`, `DarknetConv`) share one vocabulary, the cfg's:
`filters` (output channels), `size` (kernel size), `batch_normalize` and `activation_name`.
"""

from __future__ import annotations

import torch
from torch import nn

from .activations import activation

#: Darknet's rolling averages keep .99 of the old value and add .01 of the batch's (momentum 0.01).
DARKNET_BN_MOMENTUM = 0.01


def bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (scale, shift) with `bn(y) == y·scale + shift` in eval mode, computed in at least
    float32 so that folding a half-precision network rounds only once."""
    dtype = torch.promote_types(bn.running_var.dtype, torch.float32)
    scale = bn.weight.to(dtype) / torch.sqrt(bn.running_var.to(dtype) + bn.eps)
    return scale, bn.bias.to(dtype) - bn.running_mean.to(dtype) * scale


def channels_last_only(tensor: torch.Tensor) -> bool:
    """A 4-d tensor laid out channels_last and not also contiguous (as one channel, or 1×1 pixels, is)."""
    return tensor.dim() == 4 and tensor.is_contiguous(memory_format=torch.channels_last) and not tensor.is_contiguous()


def fold_bn(
    weight: torch.Tensor, bn: nn.BatchNorm2d, bias: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of one biased convolution equal to `bn(conv(x))`, in `weight`'s dtype; output
    channels are the weight's fourth-from-last dimension (so stacked kernels fold too)."""
    scale, shift = bn_scale_shift(bn)
    folded = weight.to(scale.dtype) * scale.reshape(-1, 1, 1, 1)
    if bias is not None:
        shift = shift + bias.to(scale.dtype) * scale
    return folded.to(weight.dtype), shift.to(weight.dtype)


def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A convolution equal to `bn(conv(x))` in eval mode (groups, dilation, stride, dtype, device and
    the kernel's memory layout kept); made on the meta device, so no initialisation is spent on it."""
    with torch.device("meta"):
        fused = nn.Conv2d(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
            groups=conv.groups,
            bias=True,
            padding_mode=conv.padding_mode,
        )
    weight, bias = fold_bn(conv.weight, bn, conv.bias)
    with torch.no_grad():
        fused.weight = nn.Parameter(torch.empty_like(conv.weight).copy_(weight))
        fused.bias = nn.Parameter(torch.empty_like(bias).copy_(bias))
    return fused


class ConvBNAct(nn.Module):
    """Conv2d (no bias when followed by BN) → BatchNorm2d → activation (a darknet name); 'same'
    padding unless `padding` is given."""

    def __init__(
        self,
        in_channels: int,
        filters: int,
        size: int | tuple[int, int] = 1,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | None = None,
        groups: int = 1,
        dilation: int = 1,
        batch_normalize: bool = True,
        activation_name: str = "relu",
        bias: bool | None = None,
    ):
        super().__init__()
        if padding is None:
            k = (size, size) if isinstance(size, int) else size
            padding = (dilation * (k[0] - 1) // 2, dilation * (k[1] - 1) // 2)
        self.conv = nn.Conv2d(
            in_channels,
            filters,
            size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=(not batch_normalize) if bias is None else bias,
        )
        # Plug-in blocks follow their papers and PyTorch's default momentum (0.1), not darknet's.
        self.bn = nn.BatchNorm2d(filters) if batch_normalize else None
        self.act = activation(activation_name, inplace=True)  # it only sees this block's own new output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x)

    def fuse(self) -> ConvBNAct:
        """Fold the batch norm into the convolution, in place; returns self."""
        if self.bn is not None:
            self.conv = fuse_conv_bn(self.conv, self.bn)
            self.bn = None
        return self


def constant(values: list[list[float]], like: torch.Tensor) -> torch.Tensor:
    """A fixed 2-D kernel in `like`'s dtype and device, made from Python numbers with ops that script
    and trace cleanly (`torch.tensor` in forward is frozen into a trace with a warning)."""
    return torch.stack(
        [torch.stack([torch.full([], v, dtype=like.dtype, device=like.device) for v in row]) for row in values]
    )
