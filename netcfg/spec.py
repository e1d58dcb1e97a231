"""Raw sections → validated spec: section models, references resolved, shapes inferred.

Every problem in a file is collected as a CfgItem and raised once as a CfgError.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from .errors import CfgError, CfgItem
from .parse import RawSection
from .registry import (
    TRAINING_KEYS,
    Context,
    Section,
    SpecError,
    did_you_mean,
    lookup,
    section_keys,
    section_types,
)
from .types import Shape

#: Darknet sections netcfg refuses on purpose, with the reason shown to the user.
REFUSED = {
    "rnn": "recurrent layers are not supported",
    "gru": "recurrent layers are not supported",
    "lstm": "recurrent layers are not supported",
    "crnn": "recurrent layers are not supported",
    "conv_lstm": "recurrent layers are not supported",
    "history": "recurrent layers are not supported",
    "cost": "training-only (loss) layers are not supported",
    "contrastive": "training-only (loss) layers are not supported",
    "detection": "the YOLOv1 detection layer is not supported",
    "local": "locally connected layers are not supported",
    "deconvolutional": "deconvolutional layers are not supported",
    "implicit": "implicit knowledge layers are not supported",
}

NET_NAMES = ("net", "network")
NETWORK_INPUT = -1


@dataclass(frozen=True)
class LayerSpec:
    """One validated layer: its section, where it came from, what it reads and its shape."""

    index: int
    section: Section
    raw: RawSection
    sources: tuple[int, ...]
    input_shapes: tuple[Shape, ...]
    shape: Shape


@dataclass(frozen=True)
class Spec:
    """A whole validated network: `[net]`, the layers (darknet numbering) and the outputs."""

    file: str
    net: Section
    layers: tuple[LayerSpec, ...]
    outputs: tuple[int, ...]

    @property
    def input_shape(self) -> Shape:
        return (self.net.channels, self.net.height, self.net.width)

    def context(self, layer: LayerSpec) -> Context:
        return Context(layer.index, self.net, list(layer.input_shapes))


class _Collector:
    """Collects CfgItems located by raw section and key."""

    def __init__(self, file: str):
        self.file = file
        self.items: list[CfgItem] = []

    def add(self, raw: RawSection, index: int | None, message: str, key: str | None = None) -> None:
        line, col = raw.where(key)
        self.items.append(CfgItem(message, self.file, line, col, index, raw.name, key))


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


def validate_section(raw: RawSection, index: int | None, errors: _Collector) -> Section | None:
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
    accepted = section_keys(model)
    ok = True
    for key in raw.options:
        if key not in accepted:
            errors.add(raw, index, f"unknown key{did_you_mean(key, accepted)}", key)
            ok = False
    fields = {f.alias or n for n, f in model.model_fields.items()}
    values = {k: o.value for k, o in raw.options.items() if k in fields}
    try:
        section = model.model_validate(values)
    except ValidationError as exc:
        for err in exc.errors():
            key = str(err["loc"][0]) if err["loc"] else None
            errors.add(raw, index, _pydantic_message(err), key if key in raw.options or key in fields else None)
        return None
    ignored = set(model.ignored_keys) | TRAINING_KEYS
    section._extras.update({k: o.value for k, o in raw.options.items() if k in ignored and k not in fields})
    return section if ok else None


def _resolve(ref_value: int | str, index: int) -> int:
    if isinstance(ref_value, str):
        raise SpecError(f"unknown layer label {ref_value!r}")
    absolute = index + ref_value if ref_value < 0 else ref_value
    if index == 0 and ref_value == -1:
        return NETWORK_INPUT
    if not 0 <= absolute < index:
        raise SpecError(f"layer reference {ref_value} resolves to {absolute}, outside layers 0..{index - 1}")
    return absolute


def build_spec(raws: list[RawSection], file: str = "<cfg>", net_overrides: dict | None = None) -> Spec:
    """Validate every section, resolve references and infer shapes; raise all problems at once."""
    errors = _Collector(file)
    if not raws:
        raise CfgError([CfgItem("empty cfg: no [net] section and no layers", file, 1, 1)])
    net_raw, *layer_raws = raws
    if net_raw.name not in NET_NAMES:
        errors.add(net_raw, None, f"the first section must be [net], not [{net_raw.name}]")
        raise CfgError(errors.items)
    net_raw = _with_overrides(net_raw, net_overrides or {})
    net = validate_section(net_raw, None, errors)
    if not layer_raws:
        errors.add(net_raw, None, "the cfg has no layers after [net]")
    sections = [validate_section(raw, i, errors) for i, raw in enumerate(layer_raws)]
    layers = _infer_shapes(net, sections, layer_raws, errors) if net is not None else []
    if errors.items:
        raise CfgError(errors.items)
    outputs = tuple(layer.index for layer in layers if layer.section.is_output)
    return Spec(file, net, tuple(layers), outputs or (len(layers) - 1,))


def _with_overrides(net_raw: RawSection, overrides: dict) -> RawSection:
    from .parse import RawOption

    options = dict(net_raw.options)
    for key, value in overrides.items():
        where = options.get(key)
        line, col = (where.line, where.column) if where else (net_raw.line, net_raw.column)
        options[key] = RawOption(key, str(value), line, col)
    return RawSection(net_raw.name, net_raw.line, net_raw.column, net_raw.file, options)


def _infer_shapes(
    net: Section, sections: list[Section | None], raws: list[RawSection], errors: _Collector
) -> list[LayerSpec]:
    shapes: list[Shape | None] = []
    layers: list[LayerSpec] = []
    input_shape = (net.channels, net.height, net.width)
    for index, (section, raw) in enumerate(zip(sections, raws)):
        shapes.append(None)
        if section is None:
            continue
        sources, ok = [], True
        for ref in section.inputs():
            try:
                sources.append(_resolve(ref.value, index))
            except SpecError as exc:
                errors.add(raw, index, exc.message, ref.key)
                ok = False
        if not ok:
            continue
        in_shapes = [input_shape if s == NETWORK_INPUT else shapes[s] for s in sources]
        if any(s is None for s in in_shapes):
            continue
        try:
            shape = section.infer(in_shapes, Context(index, net, in_shapes))
        except SpecError as exc:
            errors.add(raw, index, exc.message, exc.key)
            continue
        if min(shape) <= 0:
            errors.add(raw, index, f"output shape {shape} (C, H, W) is empty; input was {in_shapes[0]}")
            continue
        shapes[index] = shape
        layers.append(LayerSpec(index, section, raw, tuple(sources), tuple(in_shapes), shape))
    return layers
