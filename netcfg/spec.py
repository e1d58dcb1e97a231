"""Raw sections → validated spec: section models, references resolved, shapes inferred.

Every problem in a file is collected as a CfgItem and raised once as a CfgError.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import torch
from pydantic import TypeAdapter, ValidationError

from .compose import NET_NAMES, NETWORK_INPUT, Placed, Scope, expand, without_keys
from .errors import CfgError, CfgItem, Diagnostics, closest, did_you_mean
from .files import CfgText, IncludeRoots
from .reader import RawOption, RawSection
from .registry import lookup, section_types
from .section import Context, Section, SpecError, key_plan
from .values import Refs, Shape

#: Darknet sections netcfg refuses on purpose, with the reason shown to the user.
REFUSED = {
    "deconvolutional": "deconvolutional layers are not supported",
}

#: `[net]` key listing the network outputs (indices or labels), in the order `model(x)` returns them.
OUTPUTS_KEY = "outputs"


@dataclass(frozen=True)
class LayerSpec:
    """One validated layer: its section, where it came from, what it reads and its shape."""

    index: int
    section: Section
    raw: RawSection
    sources: tuple[int, ...]
    input_shapes: tuple[Shape, ...]
    shape: Shape
    shares: int | None = None


@dataclass(frozen=True)
class Spec:
    """A whole validated network: `[net]`, the layers (darknet numbering), the outputs and the
    top-level labels (`name=`, and `include.label` for included files) with their layer indices."""

    file: str
    net: Section
    layers: tuple[LayerSpec, ...]
    outputs: tuple[int, ...]
    labels: Mapping[str, int] = field(default_factory=dict)

    @property
    def input_shape(self) -> Shape:
        return (self.net.channels, self.net.height, self.net.width)

    def context(self, layer: LayerSpec) -> Context:
        return Context(layer.index, self.net, list(layer.input_shapes))


def _pydantic_message(err: dict) -> str:
    if err["type"] == "literal_error":
        choices = err["ctx"]["expected"]
        return f"{err['input']!r} is not one of {choices}{did_you_mean(str(err['input']), _literal_words(choices))}"
    if err["type"] in ("missing", "missing_argument"):
        return "required key is missing"
    if err["type"] == "value_error":
        return str(err["ctx"]["error"])
    return err["msg"][0].lower() + err["msg"][1:] if err["msg"] else "invalid value"


def _literal_words(expected: str) -> set[str]:
    return {word.strip(" '\"") for word in expected.replace(" or ", ",").split(",")}


def _first_key_named(message: str, raw: RawSection) -> str | None:
    """The first key of the section that a cross-field message names, to locate it."""
    return next((word for word in re.findall(r"\w+", message) if word in raw.options), None)


def validate_section(raw: RawSection, index: int | None, errors: Diagnostics, strict: bool = False) -> Section | None:
    """One raw section → its pydantic model, or None after recording why not."""
    entry = lookup(raw.name)
    if index is not None and raw.name in NET_NAMES:
        errors.add(raw, index, f"[{raw.name}] may only be the first section")
        return None
    if entry is None:
        if raw.name in REFUSED:
            errors.add(raw, index, f"[{raw.name}] is refused: {REFUSED[raw.name]}")
        else:
            names = {n for t in section_types() for n in (t.name, *t.aliases)}
            errors.add(raw, index, f"unknown section [{raw.name}]{did_you_mean(raw.name, names)}")
        return None
    model = entry.model
    plan = key_plan(model)
    fields, ignored = plan.fields, plan.ignored
    values: dict[str, str] = {}
    extras: dict[str, str] = {}
    ok = True
    for key, option in raw.options.items():
        if key in fields:
            values[key] = option.value
        elif key in ignored:
            extras[key] = option.value
        else:
            ok = _unknown_key(raw, index, key, model, errors, strict) and ok
    try:
        section = model.model_validate(values)
    except ValidationError as exc:
        for err in exc.errors():
            message = _pydantic_message(err)
            key = str(err["loc"][0]) if err["loc"] else _first_key_named(message, raw)
            errors.add(raw, index, message, key if key in raw.options or key in fields else None)
        return None
    if extras:
        section.keep_extras(extras)
    for key, message in section.notes():
        errors.warn(raw, index, message, key)
    return section if ok else None


def _unknown_key(
    raw: RawSection, index: int | None, key: str, model: type[Section], errors: Diagnostics, strict: bool
) -> bool:
    """Darknet ignores keys it does not read, so darknet's own sections do too, with a warning; but a near
    miss of a key the section does not set is a typo (darknet would silently use the default). netcfg's
    own sections, which no darknet file carries, refuse every unknown key, and so does `strict`."""
    near = closest(key, key_plan(model).accepted)
    hint = f" (did you mean {near!r}?)" if near else ""
    if strict or model.family != "darknet" or (near is not None and near not in raw.options):
        errors.add(raw, index, f"unknown key{hint}", key)
        return False
    errors.warn(raw, index, f"unused key: darknet ignores it{hint}", key)
    return True


def build_spec(
    raws: list[RawSection],
    source: CfgText,
    net_overrides: dict | None = None,
    strict: bool = False,
    include_dirs: Iterable[str | os.PathLike] = (),
) -> Spec:
    """Validate every section of `source`, resolve references and infer shapes; raise all problems at
    once. `strict` makes every key darknet would ignore an error; `include_dirs` are further folders
    `[include]` may read."""
    file = source.name
    errors = Diagnostics(file)
    if not raws:
        raise CfgError([CfgItem("empty cfg: no [net] section and no layers", file, 1, 1)])
    net_raw, *layer_raws = raws
    if net_raw.name not in NET_NAMES:
        errors.add(net_raw, None, f"the first section must be [net], not [{net_raw.name}]")
        raise CfgError(errors.items)
    net_raw = _with_overrides(net_raw, net_overrides or {})
    outputs_option = net_raw.options.get(OUTPUTS_KEY)
    net = validate_section(without_keys(net_raw, {OUTPUTS_KEY}), None, errors, strict)
    placed, top = expand(layer_raws, file, errors, IncludeRoots.around(source, include_dirs), source.path)
    if not placed and not errors.items:
        errors.add(net_raw, None, "the cfg has no layers after [net]")
    sections = [validate_section(p.raw, i, errors, strict) for i, p in enumerate(placed)]
    layers = _infer_shapes(net, sections, placed, errors) if net is not None else []
    outputs = _outputs(outputs_option, net_raw, top, len(placed), errors)
    errors.emit_warnings()
    if errors.items:
        raise CfgError(sorted(errors.items, key=lambda i: (i.file != file, i.file, i.line, i.column)))
    outputs = outputs or tuple(layer.index for layer in layers if layer.section.is_output)
    return Spec(file, net, tuple(layers), outputs or _last_non_loss(layers), dict(top.labels))


def _last_non_loss(layers: list[LayerSpec]) -> tuple[int, ...]:
    """The default output: the last layer that is not a loss, as darknet's get_network_output."""
    kept = [layer.index for layer in layers if not layer.section.is_loss]
    return (kept[-1] if kept else len(layers) - 1,)


def _outputs(option: RawOption | None, net_raw: RawSection, top: Scope, count: int, errors: Diagnostics) -> tuple:
    """`[net] outputs=`: layer indices (negative counts from the end) or labels, in return order."""
    if option is None:
        return ()
    try:
        values = TypeAdapter(Refs).validate_python(option.value)
    except ValidationError:
        values = ()
    if not values:
        errors.add(net_raw, None, "outputs= lists no layers", OUTPUTS_KEY)
    resolved: list[int] = []
    for value in values:
        try:
            index = _output_index(value, top, count)
            if index in resolved:
                raise SpecError(f"output {value!r} (layer {index}) is listed twice")
            resolved.append(index)
        except SpecError as exc:
            errors.add(net_raw, None, exc.message, OUTPUTS_KEY)
    return tuple(resolved)


def _output_index(value: int | str, top: Scope, count: int) -> int:
    if isinstance(value, str):
        if value not in top.labels:
            raise SpecError(f"unknown layer label {value!r}{did_you_mean(value, set(top.labels))}")
        return top.labels[value]
    index = count + value if value < 0 else value
    if not 0 <= index < count:
        raise SpecError(f"output {value} is outside layers 0..{count - 1}")
    return index


def _with_overrides(net_raw: RawSection, overrides: dict) -> RawSection:
    """`[net]` with keyword overrides (`width=320`) replacing its keys, located at the replaced key."""
    options = dict(net_raw.options)
    for key, value in overrides.items():
        where = options.get(key)
        line, col = (where.line, where.column) if where else (net_raw.line, net_raw.column)
        options[key] = RawOption(key, str(value), line, col)
    return RawSection(net_raw.name, net_raw.line, net_raw.column, net_raw.file, options)


def _infer_shapes(
    net: Section, sections: list[Section | None], placed: list[Placed], errors: Diagnostics
) -> list[LayerSpec]:
    shapes: list[Shape | None] = []
    layers: list[LayerSpec] = []
    done: dict[int, LayerSpec] = {}  # the layers so far by index, kept as they come (not rebuilt per layer)
    input_shape = (net.channels, net.height, net.width)
    for index, (section, place) in enumerate(zip(sections, placed)):
        shapes.append(None)
        if section is None:
            continue
        raw, scope = place.raw, place.scope
        sources, ok = [], True
        for ref in section.inputs():
            try:
                sources.append(scope.resolve(ref.value, index))
            except SpecError as exc:
                errors.add(raw, index, exc.message, ref.key)
                ok = False
        if not ok:
            continue
        in_shapes = [input_shape if s == NETWORK_INPUT else shapes[s] for s in sources]
        if None in in_shapes:
            continue
        try:
            shape = section.infer(in_shapes, Context(index, net, in_shapes))
        except SpecError as exc:
            errors.add(raw, index, exc.message, exc.key)
            continue
        if min(shape) <= 0:
            errors.add(raw, index, f"output shape {shape} (C, H, W) is empty; input was {in_shapes[0]}")
            continue
        layer = LayerSpec(index, section, raw, tuple(sources), tuple(in_shapes), shape)
        try:
            layer = _with_shared(layer, scope, done, net)
        except SpecError as exc:
            errors.add(raw, index, exc.message, exc.key)
            continue
        shapes[index] = shape
        done[index] = layer
        layers.append(layer)
    return layers


def _with_shared(layer: LayerSpec, scope: Scope, done: dict[int, LayerSpec], net: Section) -> LayerSpec:
    """`layer` with the index of the layer whose parameters it uses, checked to have the same type and
    parameter shapes (compared on the meta device, nothing allocated)."""
    ref = layer.section.shares()
    if ref is None:
        return layer
    try:
        target = scope.resolve(ref.value, layer.index)
    except SpecError as exc:
        raise SpecError(exc.message, ref.key) from None
    other = done.get(target)
    if other is None or type(other.section) is not type(layer.section):
        what = f"[{other.section.type_name}]" if other is not None else "not a layer"
        raise SpecError(f"share_index={ref.value} names layer {target}, which is {what}", ref.key)
    if other.shares is not None:
        target, other = other.shares, done[other.shares]
    mine, theirs = (_parameter_shapes(x, net) for x in (layer, other))
    differ = sorted(name for name in mine.keys() | theirs.keys() if mine.get(name) != theirs.get(name))
    if differ:
        name = differ[0]
        raise SpecError(
            f"share_index={ref.value}: layer {target}'s {name} is {theirs.get(name)}, this layer's {mine.get(name)}",
            ref.key,
        )
    return replace(layer, shares=target)


def _parameter_shapes(layer: LayerSpec, net: Section) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        module = layer.section.layer(list(layer.input_shapes), Context(layer.index, net, list(layer.input_shapes)))
        return {name: tuple(t.shape) for name, t in module.instantiate().state_dict().items()}
