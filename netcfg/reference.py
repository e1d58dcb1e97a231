"""The section reference, generated from the registered schemas so it can never drift from them:
Markdown for `docs/sections.md` and a compact text listing for `netcfg list`."""

from __future__ import annotations

import inspect
import textwrap
import types
import typing
from dataclasses import dataclass

import annotated_types
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .registry import SectionType, section_types
from .resources import bundled_cfgs
from .section import EXAMPLE_NET, TRAINING_KEYS
from .values import Activation

REGENERATE = "netcfg list --markdown > docs/sections.md"
ACTIVATIONS = typing.get_args(Activation)


@dataclass(frozen=True)
class KeyDoc:
    """One cfg key of a section type as the reference shows it."""

    key: str
    type: str
    default: str
    constraints: str
    description: str


def builtin_types() -> list[SectionType]:
    """Section types that ship with netcfg (not ones a user registered at run time)."""
    return [t for t in section_types() if t.model.__module__.startswith("netcfg.sections.")]


def by_family(entries: list[SectionType]) -> dict[str, list[SectionType]]:
    """Section types grouped by family, families in order of first registration."""
    groups: dict[str, list[SectionType]] = {}
    for entry in entries:
        groups.setdefault(entry.model.family, []).append(entry)
    return groups


def _type_name(annotation: object) -> str:
    """A reader's name for a field type: `int`, `0/1`, `int list`, `layer list`, `activation`, ..."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args if a is not type(None))
    if origin is typing.Literal:
        return "activation" if args == ACTIVATIONS else "one of " + ", ".join(map(str, args))
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = args[0]
        if typing.get_origin(item) in (typing.Union, types.UnionType):
            return "layer list"
        return f"{_type_name(item)} list"
    if annotation is bool:
        return "0/1"
    return getattr(annotation, "__name__", str(annotation))


_BOUNDS = {
    annotated_types.Gt: ("gt", "> {}"),
    annotated_types.Ge: ("ge", ">= {}"),
    annotated_types.Lt: ("lt", "< {}"),
    annotated_types.Le: ("le", "<= {}"),
    annotated_types.MinLen: ("min_length", "at least {} item(s)"),
    annotated_types.MaxLen: ("max_length", "at most {} item(s)"),
}


def _constraints(field: FieldInfo) -> str:
    parts = []
    for meta in field.metadata:
        for kind, (attr, text) in _BOUNDS.items():
            if isinstance(meta, kind):
                parts.append(text.format(getattr(meta, attr)))
    return ", ".join(parts)


def _value(value: object) -> str:
    """A default as it would be written in a cfg."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (tuple, list)):
        return ",".join(_value(v) for v in value) or "empty"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return _value(field.default_factory())
    return "required" if field.default is PydanticUndefined else _value(field.default)


def key_docs(entry: SectionType) -> list[KeyDoc]:
    """Every field of a section type, by cfg key."""
    return [
        KeyDoc(
            field.alias or name,
            _type_name(field.annotation),
            _default(field),
            _constraints(field),
            field.description or "",
        )
        for name, field in entry.model.model_fields.items()
    ]


def _names(entry: SectionType) -> str:
    aliases = ", ".join(f"`[{a}]`" for a in entry.aliases)
    return f"`[{entry.name}]`" + (f" (also {aliases})" if aliases else "")


def _key_table(keys: list[KeyDoc]) -> list[str]:
    """A Markdown table of keys; the `meaning` column only when some key has a description."""
    columns = ["key", "type", "default", "constraints"]
    described = any(k.description for k in keys)
    if described:
        columns.append("meaning")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for k in keys:
        cells = [f"`{k.key}`", k.type, k.default, k.constraints] + ([k.description] if described else [])
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return [*lines, ""]


def _section_markdown(entry: SectionType) -> list[str]:
    model = entry.model
    lines = [f"### {_names(entry)}", ""]
    doc = inspect.cleandoc(model.__doc__ or "")
    if doc:
        lines += [doc, ""]
    keys = key_docs(entry)
    if keys:
        lines += _key_table(keys)
    ignored = sorted(model.ignored_keys)
    if ignored:
        lines += ["Accepted and kept, no effect at inference: " + ", ".join(f"`{k}`" for k in ignored) + ".", ""]
    if model.example:
        lines += ["Example:", "", "```ini", (EXAMPLE_NET + model.example).rstrip("\n"), "```", ""]
    return lines


def markdown(entries: list[SectionType] | None = None) -> str:
    """The whole section reference as Markdown (built-in section types unless given others)."""
    groups = by_family(builtin_types() if entries is None else entries)
    lines = [
        "# Section reference",
        "",
        f"Generated from the section schemas by `{REGENERATE}`; do not edit by hand.",
        "",
        "Keys are written `key=value`, one per line. Types: `0/1` is a darknet flag (0 false, any other",
        "integer true); lists are comma-separated; a layer list holds layer indices, negative ones",
        "relative to the current layer.",
        "",
        "Every section also accepts darknet's per-layer training keys, kept without effect at inference: "
        + ", ".join(f"`{k}`" for k in sorted(TRAINING_KEYS))
        + ".",
        "",
        "Activation names: " + ", ".join(f"`{a}`" for a in ACTIVATIONS) + ".",
        "",
        "Families: " + ", ".join(f"[{family}](#family-{family})" for family in groups) + ".",
        "",
    ]
    for family, entries_in_family in groups.items():
        lines += [f'<a id="family-{family}"></a>', "", f"## Family `{family}`", ""]
        for entry in entries_in_family:
            lines += _section_markdown(entry)
    return "\n".join(lines).rstrip("\n") + "\n"


def _cfg_title(path) -> str:
    """The first comment line of a bundled cfg, which names the architecture."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


def listing(entries: list[SectionType] | None = None) -> str:
    """Bundled cfgs and every section type with its keys and defaults, grouped by family."""
    cfgs = bundled_cfgs()
    width = max((len(name) for name in cfgs), default=0)
    lines = ["Bundled cfgs (use the file name or the bare name, e.g. `netcfg summary yolov3`):"]
    lines += [f"  {name:<{width}}  {_cfg_title(path)}".rstrip() for name, path in cfgs.items()]
    for family, group in by_family(section_types() if entries is None else entries).items():
        lines += ["", f"Section types, family {family}:"]
        for entry in group:
            aliases = f" (also {', '.join(entry.aliases)})" if entry.aliases else ""
            keys = " ".join(f"{k.key}={k.default}" for k in key_docs(entry)) or "(no keys)"
            lines.append(f"  [{entry.name}]{aliases}")
            lines += textwrap.wrap(keys, width=96, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines) + "\n"
