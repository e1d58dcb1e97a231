"""Validated spec → `Network`: modules index-aligned with darknet's layer numbers, and a plan that
keeps each output only until its last reader has run."""

from __future__ import annotations

import operator
from collections.abc import Sequence

import torch
from torch import nn

from .errors import did_you_mean
from .memory_format import kernels_channels_last
from .modules.common import channels_last_only
from .plan import release_plan
from .resize import resized
from .spec import NETWORK_INPUT, Spec

#: For one `return_layers` request: the layer indices to return, and the outputs to free after each step.
Plan = tuple[tuple[int, ...], list[tuple[int, ...]]]


class Network(nn.Module):
    """A darknet-style network. `layers[i]` is darknet layer i.

    With detection heads (`[yolo]`/`[region]`/`[Gaussian_yolo]`) `model(x)` returns the output layers'
    outputs as a list, the heads decoded to boxes in `x`'s pixels in eval mode (`decode`) and as their
    layer outputs (darknet's `l.output`) in train mode; without heads, the last layer's output.
    `model(x, return_layers=[i, "label", ...])` returns a dict of those layers' outputs (never decoded)
    keyed as given: indices (negative ones count from the end) or labels (`spec.labels`).
    """

    def __init__(self, spec: Spec, layers: Sequence[nn.Module]):
        super().__init__()
        self.spec = spec
        self.layers = nn.ModuleList(layers)
        self._sources = tuple(layer.sources for layer in spec.layers)
        self._outputs = spec.outputs
        self._list_output = any(spec.layers[i].section.is_output for i in spec.outputs)
        self._plans: dict[tuple[int | str, ...] | None, Plan] = {}
        self._sizes_checked: set[tuple[int, int, int]] = set()
        self.fused = False

    def _plan(self, return_layers: tuple[int | str, ...] | None) -> Plan:
        """The layers to return and when to free each output, resolved once per `return_layers`."""
        plan = self._plans.get(return_layers)
        if plan is None:
            wanted = self._outputs if return_layers is None else tuple(map(self._layer_index, return_layers))
            plan = self._plans[return_layers] = (wanted, release_plan(self._sources, set(wanted)))
        return plan

    def _layer_index(self, layer: int | str) -> int:
        """A layer index (negative counts from the end) or label → the layer's index."""
        labels = self.spec.labels
        if isinstance(layer, str):
            if layer not in labels:
                known = ", ".join(sorted(labels, key=labels.get)) or "none"
                hint = did_you_mean(layer, set(labels))
                raise KeyError(f"unknown layer label {layer!r}{hint}; known labels: {known}")
            return labels[layer]
        count = len(self.layers)
        index = operator.index(layer)
        if not -count <= index < count:
            raise IndexError(f"layer {index} is outside layers 0..{count - 1}")
        return index % count

    def forward(self, x: torch.Tensor, return_layers: Sequence[int | str] | None = None):
        if isinstance(return_layers, str):
            raise TypeError(f"return_layers takes a list of layers, e.g. [{return_layers!r}], not a string")
        keys = None if return_layers is None else tuple(return_layers)
        self._check_input(x)
        wanted, release = self._plan(keys)
        outs: dict[int, torch.Tensor] = {NETWORK_INPUT: x}
        for i, layer in enumerate(self.layers):
            outs[i] = layer(*[outs[s] for s in self._sources[i]])
            for j in release[i]:
                del outs[j]
        if keys is not None:
            contiguous = {j: outs[j].contiguous() for j in wanted}
            return {key: contiguous[j] for key, j in zip(keys, wanted)}
        outputs = [outs[i].contiguous() for i in self._outputs]
        if self._list_output:
            return outputs if self.training else self.decode(outputs, x)
        return outputs[0] if len(outputs) == 1 else outputs

    def _check_input(self, x: torch.Tensor) -> None:
        """An input of another size than `[net]`'s runs as darknet's resize_network would; the first
        time each size is seen, a size this network cannot run at is a CfgError naming the layer."""
        if torch.jit.is_tracing() or torch.compiler.is_compiling():
            return  # sizes are symbolic there; the check would bake one into the graph
        if x.dim() != 4:
            raise ValueError(f"the network takes a (B, C, H, W) batch, not a tensor of shape {tuple(x.shape)}")
        shape = (int(x.shape[1]), int(x.shape[2]), int(x.shape[3]))
        if shape != self.spec.input_shape and shape not in self._sizes_checked:
            resized(self.spec, shape)
            self._sizes_checked.add(shape)

    def decode(self, outputs: Sequence[torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
        """The output layers' outputs (as train mode returns them) with each head's decoded to boxes
        in pixels of the network input `x` (only its size is read); other outputs pass unchanged."""
        return [
            self.layers[i].decode(out, x) if self.spec.layers[i].section.is_output else out
            for i, out in zip(self._outputs, outputs, strict=True)
        ]

    def __prepare_scriptable__(self) -> nn.Module:
        """What `torch.jit.script(model)` compiles: the straight-line module `netcfg.to_python` writes
        for this spec, holding this network's tensors (a loop over layers with per-layer inputs and a
        `return_layers` argument does not script). Scripted, it returns what `model(x)` does."""
        from .codegen.load import generated_class  # codegen imports the API, which imports this module

        generated = generated_class(self.spec)()
        reference = next((t for t in self.state_dict().values() if t.is_floating_point()), None)
        if reference is not None:
            generated.to(device=reference.device, dtype=reference.dtype)
        generated.load_state_dict(self.state_dict())
        return generated.train(self.training)

    def reset_state(self) -> Network:
        """Forget the state recurrent layers carry across calls (`[rnn]`, `[lstm]`, ...); returns self."""
        for module in self.modules():
            if module is not self and callable(getattr(type(module), "reset_state", None)):
                module.reset_state()
        return self

    def fuse(self) -> Network:
        """Fold every batch norm into its convolution and collapse re-parameterisable blocks, in place,
        for inference: equal to the eval-mode network, its kernels still channels_last if they were.
        Fusing again changes nothing."""
        channels_last = any(channels_last_only(t) for t in self.parameters())
        for i, layer in enumerate(self.layers):
            self.layers[i] = _fused(layer)
        if channels_last:
            kernels_channels_last(self)
        self.fused = True
        return self


def _fused(module: nn.Module) -> nn.Module:
    """`module` after its own `fuse()` (when its class defines one), with every child fused the same way."""
    fuse = getattr(type(module), "fuse", None)
    if callable(fuse):
        module = module.fuse()
    for name, child in list(module.named_children()):
        setattr(module, name, _fused(child))
    return module


def layer_module(spec: Spec, index: int) -> nn.Module:
    """A new module for layer `index` of the spec, initialised as its class does."""
    layer = spec.layers[index]
    return layer.section.layer(list(layer.input_shapes), spec.context(layer)).instantiate()


def build_network(spec: Spec, modules: Sequence[nn.Module] | None = None) -> Network:
    """Instantiate every layer's module from the spec (or take `modules`, one per layer); a layer that
    shares another's parameters (`share_index`) holds that layer's parameter-owning children themselves
    (tied, not copied)."""
    modules = [layer_module(spec, i) for i in range(len(spec.layers))] if modules is None else list(modules)
    for layer in spec.layers:
        if layer.shares is not None:
            for name in shared_children(modules[layer.shares]):
                setattr(modules[layer.index], name, getattr(modules[layer.shares], name))
    return Network(spec, modules)


def shared_children(module: nn.Module) -> list[str]:
    """The children of `module` that own parameters or buffers: what a layer sharing it takes over."""
    return [name for name, child in module.named_children() if any(True for _ in child.state_dict())]
