"""A darknet-style table of a built network: shapes, parameters and BFLOPs per layer, and totals.

BFLOPs follow darknet's convention: billions of floating-point operations for one image, counted
as 2 × multiply-adds. The generic count is 2 × the multiply-adds of every `nn.Conv2d` and
`nn.Linear` inside a layer, measured with forward hooks during one forward pass at the network's
input size; a section's `bflops()` replaces it where darknet counts otherwise (max pools, shortcuts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .budget import Estimate, estimate
from .network import Network
from .spec import NETWORK_INPUT, LayerSpec
from .values import Shape

CONVENTION = "BFLOPs = 2 × multiply-adds / 1e9 per image (darknet's convention)"


@dataclass(frozen=True)
class LayerSummary:
    """One row of the table: a layer's type, geometry, inputs, output, parameters and BFLOPs."""

    index: int
    type_name: str
    filters: int | None
    geometry: str
    sources: tuple[int, ...]
    input_shape: Shape
    output_shape: Shape
    params: int
    bflops: float


@dataclass(frozen=True)
class Summary:
    """Every layer's row plus the network totals."""

    file: str
    input_shape: Shape
    layers: tuple[LayerSummary, ...]
    total_params: int
    estimate: Estimate

    @property
    def total_bflops(self) -> float:
        return sum(row.bflops for row in self.layers)

    def __str__(self) -> str:
        return format_summary(self)


def _multiply_adds(module: nn.Module, output: torch.Tensor) -> int:
    """Multiply-adds one Conv2d or Linear call performed to produce `output`."""
    if isinstance(module, nn.Conv2d):
        return output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)
    return output.numel() * module.in_features


def measure_bflops(model: Network) -> list[float]:
    """Generic BFLOPs per layer: 2 × multiply-adds of its Conv2d/Linear modules in one forward
    pass of a single image (eval mode, no gradients; the training mode is restored)."""
    counts = [0] * len(model.layers)
    handles = []
    for index, layer in enumerate(model.layers):
        for module in layer.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):

                def hook(mod: nn.Module, _inputs, output: torch.Tensor, index: int = index) -> None:
                    counts[index] += _multiply_adds(mod, output)

                handles.append(module.register_forward_hook(hook))
    reference = next(iter(model.parameters()), None)
    options = {"device": reference.device, "dtype": reference.dtype} if reference is not None else {}
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *model.spec.input_shape, **options))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return [2 * count / 1e9 for count in counts]


def _geometry(layer: LayerSpec) -> str:
    """darknet's `size x size/stride(dilation)` column from the section's geometry, when it has one;
    strides are shown x×y when they differ."""
    geometry = layer.section.geometry
    if geometry is None:
        return ""
    (kh, kw), (sy, sx) = geometry.kernel, geometry.strides
    stride = str(sy) if sy == sx else f"{sx}x{sy}"
    suffix = f"({geometry.dilation})" if geometry.dilation > 1 else ""
    return f"{kh}x{kw}/{stride}{suffix}"


def _filters(layer: LayerSpec) -> int | None:
    filters = getattr(layer.section, "filters", None)
    return filters if isinstance(filters, int) and not isinstance(filters, bool) else None


def summarize(model: Network) -> Summary:
    """The summary of a built network at its `[net]` input size."""
    generic = measure_bflops(model)
    rows = []
    for layer, module, measured in zip(model.spec.layers, model.layers, generic):
        override = layer.section.bflops(list(layer.input_shapes), layer.shape)
        rows.append(
            LayerSummary(
                index=layer.index,
                type_name=layer.section.type_name,
                filters=_filters(layer),
                geometry=_geometry(layer),
                sources=layer.sources,
                input_shape=layer.input_shapes[0],
                output_shape=layer.shape,
                params=sum(p.numel() for p in module.parameters()),
                bflops=measured if override is None else float(override),
            )
        )
    total = sum(p.numel() for p in model.parameters())
    return Summary(model.spec.file, model.spec.input_shape, tuple(rows), total, estimate(model.spec))


def _whc(shape: Shape) -> str:
    """(C, H, W) → darknet's `W x H x C`."""
    c, h, w = shape
    return f"{w:4d} x{h:4d} x{c:5d}"


def _sources(row: LayerSummary) -> str:
    """The layers a row reads, unless it is just the previous one."""
    if row.sources == (row.index - 1,) or row.sources == (NETWORK_INPUT,):
        return ""
    return ", ".join("input" if s == NETWORK_INPUT else str(s) for s in row.sources)


def format_summary(summary: Summary) -> str:
    """The summary as a darknet-style text table with a header and totals."""
    c, h, w = summary.input_shape
    type_width = max([len("type"), *(len(row.type_name) for row in summary.layers)])
    header = (
        f"{'layer':>5}  {'type':<{type_width}}  {'filters':>7}  {'size/strd(dil)':<14}  "
        f"{'input':>17}    {'output':<17}  {'params':>11}  {'BFLOPs':>7}  from"
    )
    lines = [
        f"{summary.file}: input {w} x {h} x {c} (W x H x C)",
        CONVENTION,
        "",
        header,
    ]
    for row in summary.layers:
        filters = "" if row.filters is None else str(row.filters)
        line = (
            f"{row.index:5d}  {row.type_name:<{type_width}}  {filters:>7}  {row.geometry:<14}  "
            f"{_whc(row.input_shape)} -> {_whc(row.output_shape)}  "
            f"{row.params:11,d}  {row.bflops:7.3f}  {_sources(row)}"
        )
        lines.append(line.rstrip())
    lines += [
        "",
        f"layers: {len(summary.layers)}   parameters: {summary.total_params:,d}   "
        f"total BFLOPs: {summary.total_bflops:.3f} ({summary.total_bflops / 2:.3f} G multiply-adds)",
        str(summary.estimate),
    ]
    return "\n".join(lines) + "\n"
