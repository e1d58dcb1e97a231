"""What a network costs, known before anything is allocated: its parameters (counted on the meta device,
from the very modules `build` makes) and the peak memory of layer outputs in one forward at batch 1 (from
the spec's shapes and the liveness plan `Network` follows). `build` refuses a network over its budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .errors import CfgError, Diagnostics
from .plan import release_plan
from .spec import NETWORK_INPUT, LayerSpec, Spec

GB = 1e9


@dataclass(frozen=True)
class Budget:
    """The most a network may ask for: parameters (8 GB as float32), peak layer-output bytes at batch 1, and
    the billions of operations the windows of its convolutions and pools slide over at batch 1 (a huge
    window on a small input allocates little but would run for hours)."""

    max_parameters: int = 2_000_000_000
    max_activation_bytes: int = 8 * 2**30
    max_window_bflops: float = 5_000.0


DEFAULT_BUDGET = Budget()


@dataclass(frozen=True)
class Estimate:
    """Parameters per layer, and the peak bytes of live layer outputs (float32, batch 1) with the layer at
    which that peak is reached."""

    layer_parameters: tuple[int, ...]
    activation_bytes: int
    peak_layer: int
    layer_window_bflops: tuple[float, ...] = ()

    @property
    def parameters(self) -> int:
        return sum(self.layer_parameters)

    def __str__(self) -> str:
        return (
            f"estimate: {self.parameters:,d} parameters ({4 * self.parameters / GB:.3f} GB as float32), "
            f"peak layer outputs {self.activation_bytes / GB:.3f} GB at batch 1 (after layer {self.peak_layer})"
        )


def estimate(spec: Spec, meta_layers: Sequence[nn.Module] | None = None) -> Estimate:
    """The parameters of every layer's module, built on the meta device (or counted in `meta_layers`,
    one module per layer, as `meta_modules` makes them), and the peak activation memory."""
    if meta_layers is None:
        known: dict[tuple, int] = {}
        with torch.device("meta"):
            counts = tuple(_counted(spec, layer, known) for layer in spec.layers)
    else:
        counts = tuple(0 if layer.shares is not None else _count(m) for layer, m in zip(spec.layers, meta_layers))
    peak, peak_layer = _peak_activations(spec)
    return Estimate(counts, peak, peak_layer, tuple(_window_bflops(layer) for layer in spec.layers))


def _counted(spec: Spec, layer: LayerSpec, known: dict[tuple, int]) -> int:
    """`_parameters`, counted once for equal sections on equal inputs (repeat= and include fan-outs)."""
    key = (layer.section, layer.input_shapes, layer.shares is None)
    try:
        if key not in known:
            known[key] = _parameters(spec, layer)
        return known[key]
    except TypeError:  # a user section with unhashable fields: counted every time
        return _parameters(spec, layer)


def _parameters(spec: Spec, layer: LayerSpec) -> int:
    if layer.shares is not None:
        return 0  # tied to the shared layer's, counted there
    return _count(_meta_module(spec, layer))


def meta_modules(spec: Spec) -> list[nn.Module]:
    """Every layer's module on the meta device (no storage): what `estimate` counts, and what a build
    from a weights file then gives storage to, so the modules are made once."""
    with torch.device("meta"):
        return [_meta_module(spec, layer) for layer in spec.layers]


def _meta_module(spec: Spec, layer: LayerSpec) -> nn.Module:
    """One layer's module, under the caller's meta device; a CfgError when torch cannot describe it."""
    try:
        return layer.section.layer(list(layer.input_shapes), spec.context(layer)).instantiate()
    except RuntimeError as exc:  # torch cannot even describe a tensor that large, on the meta device
        errors = Diagnostics(spec.file)
        errors.add(layer.raw, layer.index, f"this layer's parameters are too many to count: {exc}")
        raise CfgError(errors.items) from None


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _window_bflops(layer: LayerSpec) -> float:
    """Billions of operations of the layer's window at batch 1: the section's own count (pools), else
    2 × kernel area × input channels per group × output elements; 0 for a layer without a window."""
    own = layer.section.bflops(list(layer.input_shapes), layer.shape)
    if own is not None:
        return own
    geometry = layer.section.geometry
    if geometry is None:
        return 0.0
    kh, kw = geometry.kernel
    return 2 * kh * kw * (layer.input_shapes[0][0] // geometry.groups) * _numel(layer.shape) / 1e9


def _peak_activations(spec: Spec) -> tuple[int, int]:
    """Peak bytes of the outputs alive at once (input included) in a forward that frees each output after
    its last reader, as `Network` does, plus the padded copy of its input a windowed layer makes; and the
    layer at which it is reached."""
    itemsize = 4
    sizes = {NETWORK_INPUT: _numel(spec.input_shape) * itemsize}
    sizes.update({layer.index: _numel(layer.shape) * itemsize for layer in spec.layers})
    release = release_plan([layer.sources for layer in spec.layers], set(spec.outputs))
    live, peak, peak_layer = sizes[NETWORK_INPUT], 0, 0
    for layer, freed in zip(spec.layers, release):
        live += sizes[layer.index]
        during = live + _padded_input(layer) * itemsize
        if during > peak:
            peak, peak_layer = during, layer.index
        live -= sum(sizes[i] for i in freed)
    return peak, peak_layer


def _padded_input(layer: LayerSpec) -> int:
    """Elements of the padded copy of the input a windowed layer may make while it runs (0 unpadded)."""
    geometry = layer.section.geometry
    if geometry is None or not any(geometry.padding) or not layer.input_shapes:
        return 0
    c, h, w = layer.input_shapes[0]
    extra = sum(geometry.padding)
    return c * (h + extra) * (w + extra)


def _numel(shape: tuple[int, int, int]) -> int:
    c, h, w = shape
    return c * h * w


def check(spec: Spec, budget: Budget, meta_layers: Sequence[nn.Module] | None = None) -> Estimate:
    """The estimate of `spec` (see `estimate`); a CfgError located at the costliest layer when it
    exceeds `budget`."""
    found = estimate(spec, meta_layers)
    errors = Diagnostics(spec.file)
    if found.parameters > budget.max_parameters:
        index = max(range(len(found.layer_parameters)), key=found.layer_parameters.__getitem__)
        errors.add(
            spec.layers[index].raw,
            index,
            f"the network has {found.parameters:,d} parameters, over the budget of {budget.max_parameters:,d} "
            f"(pass budget=netcfg.Budget(max_parameters=...) to allow it); this layer holds the most: "
            f"{found.layer_parameters[index]:,d}",
        )
    if found.activation_bytes > budget.max_activation_bytes:
        layer = spec.layers[found.peak_layer]
        errors.add(
            layer.raw,
            layer.index,
            f"one forward at batch 1 keeps {found.activation_bytes / GB:.2f} GB of layer outputs alive, over the "
            f"budget of {budget.max_activation_bytes / GB:.2f} GB (pass budget=netcfg.Budget("
            f"max_activation_bytes=...) to allow it); the peak is reached at this layer, output {layer.shape}"
            + (f", its padded input {4 * padded / GB:.2f} GB" if (padded := _padded_input(layer)) else ""),
        )
    work = found.layer_window_bflops
    if work and sum(work) > budget.max_window_bflops:
        index = max(range(len(work)), key=work.__getitem__)
        errors.add(
            spec.layers[index].raw,
            index,
            f"one forward at batch 1 slides windows over {sum(work):,.0f} billion operations, over the budget of "
            f"{budget.max_window_bflops:,.0f} (pass budget=netcfg.Budget(max_window_bflops=...) to allow it); "
            f"this layer costs the most: {work[index]:,.0f}",
        )
    if errors.items:
        raise CfgError(errors.items)
    return found
