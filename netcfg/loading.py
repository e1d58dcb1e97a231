"""`build(cfg, weights=...)` without wasted work: the layers a `.weights` file covers are made on the
meta device and read from the file straight into their new storage, so no random initialisation is
spent on values the file replaces and the weights are in memory once (no file buffer beside them).

Layers the file does not cover (a partial file such as `darknet53.conv.74`), and layers holding state
the file cannot describe (a fixed buffer), are built as usual, so they keep their normal
initialisation. Sizes are checked against the network before any tensor is allocated, with the
messages `load_darknet_weights` gives; a bad file raises WeightsError and no network is returned.
"""

from __future__ import annotations

import io
import os

import torch
from torch import nn

from .errors import WeightsError
from .network import Network, build_network, layer_module
from .spec import Spec
from .weights import (
    FLOAT,
    _from_file,
    _header,
    _layer_tensors,
    _LayerTensors,
    _layout,
    _plan_load,
    _report,
    check_tensor,
    load_darknet_weights,
    warn_old_format,
)


def build_loaded(spec: Spec, path: str | os.PathLike, validate: bool = True) -> Network:
    """A network for `spec` holding the darknet weights in `path` (see the module docstring)."""
    if torch.get_default_device().type != "cpu":
        model = build_network(spec)  # under meta this is refused, as the file need not cover every tensor
        load_darknet_weights(model, path, validate)
        return model
    file = str(path)
    header, size = _header(path)
    warn_old_format(header, file, stacklevel=4)
    with torch.device("meta"):
        skeleton = build_network(spec)
    layout = _layout(skeleton, header)
    covered, offsets = _plan_load(layout, *divmod(size - header.size, FLOAT), file)
    from_file = {e.index for e in layout[:covered] if e.floats and _file_holds_all(skeleton.layers[e.index], e)}
    modules = [_materialised(skeleton.layers[i]) if i in from_file else layer_module(spec, i) for i in range(covered)]
    modules += [layer_module(spec, i) for i in range(covered, len(spec.layers))]
    model = build_network(spec, modules)
    entries = [_layer_tensors(model, e.index, header.transpose) for e in layout[:covered]]
    _read_layers(entries, offsets, path, header.size, validate)
    model.darknet_header = header
    _report(file, covered, len(layout))
    return model


def _file_holds_all(module: nn.Module, entry: _LayerTensors) -> bool:
    """Whether the file gives every tensor of `module` (batch norms' step counters aside, which start at 0)."""
    listed = {id(t) for t in entry.tensors}
    named = [*module.named_parameters(), *module.named_buffers()]
    return all(id(t) in listed or name.endswith("num_batches_tracked") for name, t in named)


def _materialised(module: nn.Module) -> nn.Module:
    """A meta module given uninitialised CPU storage (the file fills it), step counters set to 0.
    Plain `torch.empty` per tensor: `to_empty` on meta tensors imports sympy, a second on first use."""
    for sub in module.modules():
        for name, param in sub._parameters.items():
            if param is not None:
                empty = torch.empty(param.shape, dtype=param.dtype)
                sub._parameters[name] = nn.Parameter(empty, requires_grad=param.requires_grad)
        for name, buffer in sub._buffers.items():
            if buffer is not None:
                make = torch.zeros if name == "num_batches_tracked" else torch.empty
                sub._buffers[name] = make(buffer.shape, dtype=buffer.dtype)
    return module


def _read_layers(
    layout: list[_LayerTensors], offsets: list[int], path: str | os.PathLike, start: int, validate: bool
) -> None:
    """Read each layer's tensors from its file offset, in file order, checking them when asked."""
    file = str(path)
    try:
        with open(path, "rb") as f:
            for entry, offset in zip(layout, offsets):
                f.seek(start + offset * FLOAT)
                for tensor, name, transposed in zip(entry.tensors, entry.names, entry.transposed):
                    _read_tensor(f, tensor, transposed, file)
                    if validate:
                        check_tensor(tensor.detach(), entry, name, file)
    except OSError as exc:
        raise WeightsError(f"cannot read weights file {file}: {exc.strerror or exc}") from exc


def _read_tensor(f: io.BufferedReader, tensor: torch.Tensor, transposed: bool, file: str) -> None:
    """Fill `tensor` from the file's next floats: straight into its storage when that is float32 in
    file order, else through one temporary of the tensor's size."""
    direct = tensor.dtype == torch.float32 and tensor.is_contiguous() and not transposed and tensor.device.type == "cpu"
    target = tensor.detach() if direct else torch.empty(tensor.numel(), dtype=torch.float32)
    wanted = target.numel() * FLOAT
    if wanted and f.readinto(memoryview(target.numpy()).cast("B")) != wanted:
        raise WeightsError(f"cannot read weights file {file}: it ended early (was it changed while being read?)")
    if not direct:
        with torch.no_grad():
            tensor.copy_(_from_file(target, tensor, transposed))
