"""The body of the generated `forward`: straight-line code, `x` the latest output, other live
outputs in named variables deleted as `netcfg.plan.release_plan` frees them in `Network`."""

from __future__ import annotations

from collections.abc import Sequence

from ..plan import release_plan
from ..spec import NETWORK_INPUT, Spec
from .calls import Layer, inline_expression
from .layout import INDENT, LINE_LENGTH, Group, fits, lines
from .names import identifier, inert

_BODY = INDENT * 2


def forward_lines(layers: Sequence[Layer], spec: Spec, taken: set[str]) -> tuple[list[str], str]:
    """The body of `forward` (at two indents) and its return annotation."""
    heads = [i for i in spec.outputs if spec.layers[i].section.is_output]
    saved = _saved_names(layers, spec.outputs, bool(heads), taken)
    release = release_plan([layer.spec.sources for layer in layers], set(spec.outputs))
    body = [f"{_BODY}{saved[NETWORK_INPUT]} = x"] if NETWORK_INPUT in saved else []
    for layer in layers:
        i = layer.index
        body += _statement(layer, ["x" if s == i - 1 else saved[s] for s in layer.spec.sources])
        if i in saved:
            body.append(f"{_BODY}{saved[i]} = x")
        body += _del_lines([saved[j] for j in release[i] if j in saved])
    results = [f"{saved.get(i, 'x')}.contiguous()" for i in spec.outputs]
    if heads or len(results) != 1:
        return [*body, *_return_outputs(spec, results, saved.get(NETWORK_INPUT, "x"))], "list[torch.Tensor]"
    return [*body, f"{_BODY}return {results[0]}"], "torch.Tensor"


def _return_outputs(spec: Spec, results: list[str], image: str) -> list[str]:
    """Raw outputs in train mode; in eval mode each detection head's `decode(output, image)`; all of
    them contiguous, as `Network.forward` returns them."""
    raw = lines(Group("[", tuple(results), "]"), 2, "return ")
    if not any(spec.layers[i].section.is_output for i in spec.outputs):
        return raw
    decoded = tuple(
        f"self.layers[{i}].decode({result}, {image})" if spec.layers[i].section.is_output else result
        for i, result in zip(spec.outputs, results)
    )
    train = [f"{_BODY}if self.training:", *(INDENT + row for row in raw)]
    return [*train, *lines(Group("[", decoded, "]"), 2, "return ")]


def _saved_names(layers: Sequence[Layer], outputs: Sequence[int], decode: bool, taken: set[str]) -> dict[int, str]:
    """A variable for each output that must outlive the next layer: read later or returned; and
    for the network input when a later layer reads it or detection heads decode against it."""
    readers: dict[int, set[int]] = {}
    for layer in layers:
        for source in layer.spec.sources:
            readers.setdefault(source, set()).add(layer.index)
    last = len(layers) - 1
    names: dict[int, str] = {}
    used = set(taken) | {"x"}
    for i, base in [(NETWORK_INPUT, "net_input"), *((layer.index, _variable_base(layer)) for layer in layers)]:
        later = readers.get(i, set()) - {i + 1}
        if not (later or (i in outputs and i != last) or (i == NETWORK_INPUT and decode)):
            continue
        name = base if base not in used else f"{base}_{i}"
        while name in used:
            name += "_"
        used.add(name)
        names[i] = name
    return names


def _variable_base(layer: Layer) -> str:
    """`<label>` or `<type>_<index>`, as an identifier."""
    fallback = identifier(f"{layer.spec.section.type_name}_{layer.index}", f"layer_{layer.index}")
    return identifier(layer.label, fallback) if layer.label else fallback


def _statement(layer: Layer, args: list[str]) -> list[str]:
    """`x = <layer i applied to args>`, as a plain expression when the module allows it."""
    node = inline_expression(layer.call, args)
    kind = f"# {layer.index}: [{inert(layer.spec.section.type_name, 40)}]"
    if node == "x":
        return [f"{_BODY}{kind} passes x through"]
    if node is not None and fits(rows := lines(node, 2, "x = ")):
        return [f"{_BODY}{kind}", *rows]
    return lines(Group(f"self.layers[{layer.index}](", tuple(args), ")"), 2, "x = ")


def _del_lines(names: list[str]) -> list[str]:
    """`del a, b` statements, split so each fits on a line."""
    out: list[str] = []
    current: list[str] = []
    for name in names:
        if current and len(f"{_BODY}del {', '.join([*current, name])}") > LINE_LENGTH:
            out.append(f"{_BODY}del {', '.join(current)}")
            current = []
        current.append(name)
    return [*out, f"{_BODY}del {', '.join(current)}"] if current else out
