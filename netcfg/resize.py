"""A validated network at another input size, as darknet's `resize_network`: every layer's shape is
inferred again, and a layer that cannot run there is a CfgError naming it and both shapes, instead of
a bare RuntimeError deep inside a forward."""

from __future__ import annotations

from dataclasses import replace

from .errors import CfgError, Diagnostics
from .section import Context, SpecError
from .spec import NETWORK_INPUT, LayerSpec, Spec
from .values import Shape, shape_text


def resized(spec: Spec, input_shape: Shape) -> Spec:
    """`spec` for a (C, H, W) input. A layer fails when its shape rule refuses the new inputs (a route
    or shortcut whose inputs no longer agree, a crop larger than its input, ...) or when its module,
    built for the old inputs, would be built differently for the new ones (a `[connected]` layer's
    input count, a reorg's fixed dims)."""
    if input_shape == spec.input_shape:
        return spec
    channels, height, width = input_shape
    net = spec.net.model_copy(update={"channels": channels, "height": height, "width": width})
    errors = Diagnostics(spec.file)
    shapes: dict[int, Shape | None] = {NETWORK_INPUT: input_shape}
    layers: list[LayerSpec] = []
    for layer in spec.layers:
        inputs = [shapes[s] for s in layer.sources]
        shapes[layer.index] = None
        if any(shape is None for shape in inputs):
            continue
        try:
            shape = _reinfer(spec, layer, inputs, Context(layer.index, net, inputs))
        except SpecError as exc:
            where = f"at input {shape_text(input_shape)}"
            errors.add(layer.raw, layer.index, f"{where} (the cfg's is {shape_text(spec.input_shape)}): {exc.message}")
            continue
        shapes[layer.index] = shape
        layers.append(replace(layer, input_shapes=tuple(inputs), shape=shape))
    if errors.items:
        raise CfgError(errors.items)
    return replace(spec, net=net, layers=tuple(layers))


def _reinfer(spec: Spec, layer: LayerSpec, inputs: list[Shape], ctx: Context) -> Shape:
    """The layer's output for new `inputs`; SpecError when it cannot run on them as built."""
    section = layer.section
    shape = section.infer(inputs, ctx)
    if min(shape) <= 0:
        raise SpecError(f"output shape {shape} (C, H, W) is empty")
    if section.layer(inputs, ctx) != section.layer(list(layer.input_shapes), spec.context(layer)):
        raise SpecError(
            f"its module was built for input {shape_text(layer.input_shapes[0])}, not {shape_text(inputs[0])}"
        )
    return shape
