"""The recommended CPU inference path in one call: `netcfg.optimize(model)`.

It puts the network in eval mode, folds every batch norm into its convolution (`fuse`) and moves the
weights to channels_last, the layout oneDNN's convolutions run fastest in on CPU (inputs may stay
NCHW: the first convolution converts them). With `compile=True` it also returns
`torch.compile(model, options={"freezing": True})`, which constant-folds the weights into an
inductor graph; run it under `torch.inference_mode()`. Compiling takes minutes on a small CPU
machine, so it is worth it only for a long-running process. Outputs equal the eval-mode network's
up to float rounding.
"""

from __future__ import annotations

import torch
from torch import nn

from .network import Network


def optimize(model: Network, *, compile: bool = False) -> nn.Module:
    """`model` fused, in eval mode and channels_last, in place; with `compile`, a frozen compiled wrapper."""
    model.eval()
    if not model.fused:
        model.fuse()
    model.to(memory_format=torch.channels_last)
    if compile:
        return torch.compile(model, options={"freezing": True})
    return model
