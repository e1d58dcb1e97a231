"""Names in generated code: identifiers from labels, the class name, and inert comment text."""

from __future__ import annotations

import builtins
import keyword
import re
from pathlib import Path

from ..spec import Spec
from .literals import IDENTIFIER

_MAX_LABEL = 40


def identifier(text: str, fallback: str) -> str:
    """`text` as a Python identifier (ASCII letters, digits, underscores), or `fallback` if nothing is left."""
    name = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:_MAX_LABEL].rstrip("_")
    if not name:
        return fallback
    if name[0].isdigit():
        name = f"layer_{name}"
    return f"{name}_" if keyword.iskeyword(name) else name


def inert(text: str, limit: int = 80) -> str:
    """Text safe inside a comment or docstring: printable ASCII without quotes or backslashes."""
    clean = re.sub(r"[^A-Za-z0-9_.,:;+=@()\[\]{}<>/ -]", "?", text)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def cfg_name(file: str) -> str:
    """The cfg's file name, made safe for comments and docstrings."""
    return inert(Path(file).name if file != "<cfg>" else "cfg text", 60)


def class_name_error(name: str, taken: set[str] = frozenset()) -> str | None:
    """Why `name` cannot be the generated class's name (not an identifier, reserved, a builtin or
    one of `taken`, the module's other globals), or None when it can."""
    if not IDENTIFIER.match(name):
        return f"class name {name!r} is not a Python identifier"
    if keyword.iskeyword(name) or name.startswith("__"):
        return f"class name {name!r} is reserved"
    if hasattr(builtins, name):
        return f"class name {name!r} would shadow the Python builtin {name!r}"
    if name in taken:
        return f"class name {name!r} collides with a name the generated module defines or imports"
    return None


def default_class_name(file: str) -> str:
    """`yolov3-tiny.cfg` → `Yolov3Tiny`; `Network` when the stem has no ASCII letters or digits."""
    parts = re.split(r"[^A-Za-z0-9]+", Path(file).stem) if file != "<cfg>" else []
    name = "".join(part[:1].upper() + part[1:] for part in parts if part)
    if not name:
        return "Network"
    return f"Net{name}" if name[0].isdigit() or class_name_error(name) else name


def choose_class_name(requested: str | None, file: str, taken: set[str]) -> str:
    """The requested class name after validation (ValueError if unusable), or one derived from the file name."""
    if requested is None:
        name = default_class_name(file)
        while name in taken:
            name += "Net"
        return name
    if error := class_name_error(requested, taken):
        raise ValueError(error)
    return requested


def layer_labels(spec: Spec) -> dict[int, str]:
    """Each labelled layer's first label (`name=`, or `include.label` for included files)."""
    out: dict[int, str] = {}
    for label, index in spec.labels.items():
        out.setdefault(index, label)
    return out
