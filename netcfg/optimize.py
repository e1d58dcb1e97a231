"""The recommended CPU inference path in one call: `netcfg.optimize(model)`.

It puts the network in eval mode, folds every batch norm into its convolution (`fuse`), moves the
kernels to channels_last (oneDNN's fastest CPU layout, which `build` gives unless asked not to;
inputs may stay NCHW) and, where oneDNN is there, turns each `[convolutional]` into a `PackedConv`:
its kernel reordered once into the blocked layout oneDNN picks for that layer's input size (instead
of on every call; again when the size changes) and its activation fused into the convolution where
oneDNN has it. It also asks glibc's malloc to keep freed blocks for the next forward
(`keep_memory`). With `compile=True` it instead returns `torch.compile(model, options={"freezing":
True})`, which does the same inside an inductor graph; compiling takes minutes on a small CPU
machine. Outputs equal the eval-mode network's up to float rounding.
"""

from __future__ import annotations

import ctypes
import sys

import torch
from torch import nn

from .memory_format import kernels_channels_last
from .modules import activations as acts
from .modules.darknet import DarknetConv
from .network import Network

#: Activations oneDNN applies inside the convolution: module type → (oneDNN post-op, its scalars).
FUSED_ACTIVATIONS: dict[type[nn.Module], tuple[str, list[float]]] = {
    nn.Identity: ("none", []),
    acts.Leaky: ("leaky_relu", [0.1]),
    acts.Relu: ("relu", []),
    acts.Logistic: ("sigmoid", []),
    acts.Swish: ("swish", []),
    nn.Tanh: ("tanh", []),
    acts.HardTan: ("hardtanh", [-1.0, 1.0]),
}
#: glibc's mallopt parameters, and the size of freed blocks `keep_freed_memory` keeps for reuse.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
KEPT_BYTES = 1 << 30


def optimize(model: Network, *, compile: bool = False, keep_memory: bool = True) -> nn.Module:
    """`model` fused, in eval mode and channels_last, its convolutions packed, in place; with
    `compile`, a frozen compiled wrapper instead of packed convolutions. `keep_memory` calls
    `keep_freed_memory` (process-wide)."""
    if keep_memory:
        keep_freed_memory()
    model.eval()
    if not model.fused:
        model.fuse()
    kernels_channels_last(model)
    if compile:
        return torch.compile(model, options={"freezing": True})
    if _packing_available(model):
        for i, layer in enumerate(model.layers):
            if type(layer) is DarknetConv and PackedConv.packable(layer):
                model.layers[i] = PackedConv(layer)
    return model


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed blocks of up to KEPT_BYTES for reuse, as ONNX Runtime's arena
    does, instead of unmapping or trimming them; whether it took (False off glibc).

    PyTorch allocates each CPU output afresh, and glibc returns large freed blocks to the kernel, so
    every forward faulted its activations in again: yolov3-spp at 416×416 took 10,800 page faults and
    25 ms of kernel time a call, none after this. The process then holds its peak memory."""
    if not sys.platform.startswith("linux"):
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, KEPT_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, KEPT_BYTES))


def _packing_available(model: Network) -> bool:
    """oneDNN is built in and the weights are CPU float32 (not meta, not another dtype)."""
    weight = next(model.parameters(), None)
    usable = weight is not None and weight.device.type == "cpu" and weight.dtype == torch.float32
    return usable and torch.backends.mkldnn.is_available()


class PackedConv(DarknetConv):
    """A fused `[convolutional]` whose kernel oneDNN reorders once, for inference.

    Under `torch.no_grad()`/`inference_mode` on CPU float32 inputs it runs oneDNN's convolution with
    the packed kernel and, where `FUSED_ACTIVATIONS` lists it, the activation as a post-op; otherwise
    (autograd, autocast, other dtypes or devices, tracing) it is the plain DarknetConv. The kernel is
    packed again whenever the convolution's weight changes (a new tensor or an in-place update; a
    write through `.data` escapes autograd's version counter, so call `optimize` again after one),
    and whenever the input size changes: oneDNN picks the packed layout by input size and, given a
    kernel packed for another size, reorders it again on every call."""

    def __init__(self, layer: DarknetConv):
        nn.Module.__init__(self)
        self.__dict__.update(layer.__dict__)  # the layer's own modules and state, not copies
        self._post_op = FUSED_ACTIVATIONS.get(type(self.act))
        self._packed: tuple[torch.Tensor, int | None, list[int], torch.Tensor] | None = None

    def __getstate__(self) -> dict:
        """Copies and pickles leave the packed kernel out (oneDNN's layout has no storage to copy)."""
        return {**super().__getstate__(), "_packed": None}

    @staticmethod
    def packable(layer: DarknetConv) -> bool:
        """A plain fused convolution: no batch norm left, no binary weights, no blur, zero padding."""
        plain = layer.bn is None and not layer.binary and layer.blur is None
        return plain and layer.conv.padding_mode == "zeros" and isinstance(layer.conv.padding, tuple)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._runs_packed(x):
            return super().forward(x)
        c = self.conv
        post_op, scalars = self._post_op or ("none", [])
        x = x.contiguous(memory_format=torch.channels_last)
        kernel = self._kernel(list(x.shape))
        out = torch.ops.mkldnn._convolution_pointwise(
            x, kernel, c.bias, list(c.padding), list(c.stride), list(c.dilation), c.groups, post_op, scalars, ""
        )
        return out if self._post_op is not None else self.act(out)

    def _runs_packed(self, x: torch.Tensor) -> bool:
        """Inference on a CPU float32 tensor, outside autocast, tracing and compiling."""
        if torch.is_grad_enabled() or x.device.type != "cpu" or x.dtype != torch.float32:
            return False
        if torch.is_autocast_enabled("cpu") or torch.jit.is_tracing() or torch.jit.is_scripting():
            return False
        return not torch.compiler.is_compiling() and self.conv.weight.dtype == torch.float32

    def _kernel(self, input_size: list[int]) -> torch.Tensor:
        """The kernel packed for `input_size`; packed anew when the size, the weight tensor or its
        version (an in-place change) differs from the last packing's."""
        weight = self.conv.weight
        version = None if weight.is_inference() else weight._version  # inference tensors keep no count
        packed = self._packed
        if packed is None or packed[0] is not weight or packed[1] != version or packed[2] != input_size:
            self._packed = packed = (weight, version, input_size, _pack(self.conv, input_size))
        return packed[3]


def _pack(conv: nn.Conv2d, input_size: list[int]) -> torch.Tensor:
    """`conv`'s kernel in the blocked layout oneDNN picks for inputs of `input_size` (N, C, H, W)."""
    return torch.ops.mkldnn._reorder_convolution_weight(
        conv.weight.detach(), list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups, input_size
    )
