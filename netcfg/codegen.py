"""Spec → readable, importable PyTorch source: one `nn.Module` class per cfg, no cfg at run time.

Design:
- `__init__` prints every layer's `LayerCall` (the very call `build` instantiates) as Python: the
  registry is the only source of truth, so every section type, present or future, converts.
  Keyword arguments equal to the constructor's defaults are left out, torchvision style.
- Layers live in `self.layers = nn.ModuleList([...])`, one entry per darknet layer, each under a
  comment naming its index, section type (and `name=` label) and cfg line. That keeps the
  `state_dict()` keys (`layers.<i>.…`) identical to `netcfg.build(cfg)`'s with no key mapping, so
  weights move either way with `load_state_dict`; named attributes would need a mapping layer.
- `forward` is straight-line code. `x` always holds the latest layer's output; an output read by a
  later layer (not only the next) or returned is also bound to a variable named after the layer
  (`<type>_<index>`, or its sanitised `name=` label) and deleted after its last reader, as
  `Network`'s release plan does, so only live tensors are kept. Plain `[route]`s and `[shortcut]`s
  are written as `torch.cat` and `+` (`_INLINE`); their modules still hold their index in `layers`,
  so every index (parameter-free or not) keeps its darknet number.
- `standalone=True` inlines the source of every module class used and, transitively, every
  module-level name it refers to in its package (functions, classes, constants): each inlined
  statement's names are resolved with `ast` against its module's top-level definitions and imports,
  through `from .x import y` and `module.attr` (both rewritten away). Definitions come in the order
  of their modules, dependencies first; two with one name are renamed `<name>_<module>`. Imports of
  anything else (torch, stdlib) are merged and sorted, so the file needs only torch.
- Safety: cfg values reach the output only through `literal()` (finite numbers, booleans, None,
  tuples of those and identifier-like strings). Labels reach it only as `_identifier()` names, file
  names and section names only through `_inert()` in comments and the docstring. Nothing else from
  a cfg is printed.
- `convert_arguments` and `run_convert` are the `netcfg convert` subcommand, wired into `netcfg.cli`.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import inspect
import keyword
import math
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from .api import CfgSource, parse
from .errors import CfgError, CfgItem, CfgWarning
from .modules.darknet import Route, Shortcut
from .section import LayerCall
from .spec import NETWORK_INPUT, LayerSpec, Spec

LINE_LENGTH = 120
INDENT = "    "
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MAX_LABEL = 40

# ---------------------------------------------------------------------------------------------------
# Values and layout


@dataclass(frozen=True)
class _Group:
    """A bracketed, comma-separated expression that can be laid out flat or one item per line."""

    head: str
    items: tuple[_Node, ...]
    close: str
    one_tuple: bool = False

    def flat(self) -> str:
        inner = ", ".join(_flat(item) for item in self.items)
        return f"{self.head}{inner}{',' if self.one_tuple else ''}{self.close}"


_Node = str | _Group


def _flat(node: _Node) -> str:
    return node if isinstance(node, str) else node.flat()


def _lines(node: _Node, indent: int, prefix: str = "", trail: str = "") -> list[str]:
    """Lay out `prefix + node + trail` at `indent` as ruff format does: flat if it fits, else the
    items on one indented line if they fit, else one item per line with a trailing comma."""
    pad = INDENT * indent
    flat = f"{pad}{prefix}{_flat(node)}{trail}"
    if len(flat) <= LINE_LENGTH or isinstance(node, str) or not node.items:
        return [flat]
    first, close = f"{pad}{prefix}{node.head}", f"{pad}{node.close}{trail}"
    body = f"{pad}{INDENT}{', '.join(_flat(item) for item in node.items)}{',' if node.one_tuple else ''}"
    if len(body) <= LINE_LENGTH:
        return [first, body, close]
    return [first, *(line for item in node.items for line in _lines(item, indent + 1, trail=",")), close]


def _value_node(value: Any, prefix: str = "") -> _Node:
    """A plain value as a layout node; raises for anything a cfg could use to smuggle in code."""
    if isinstance(value, (tuple, list)):
        items = tuple(_value_node(item) for item in value)
        if isinstance(value, list):
            return _Group(f"{prefix}[", items, "]")
        return _Group(f"{prefix}(", items, ")", one_tuple=len(items) == 1)
    return prefix + _atom(value)


def _atom(value: Any) -> str:
    if value is None or type(value) is bool:
        return repr(value)
    if type(value) is int:
        return repr(value)
    if type(value) is float:
        if math.isnan(value):
            raise ValueError("NaN cannot be written as a constructor argument")
        if math.isinf(value):
            return 'float("inf")' if value > 0 else '-float("inf")'
        return repr(value)
    if type(value) is str:
        if not IDENTIFIER.match(value):
            raise ValueError(f"string {value!r} is not identifier-like ({IDENTIFIER.pattern}); refusing to print it")
        return f'"{value}"'
    raise TypeError(f"{type(value).__name__} value {value!r} is not a plain value (int, float, bool, None, str, tuple)")


def literal(value: Any) -> str:
    """Python source for a plain value: finite int/float (or ±inf), bool, None, identifier-like str,
    or tuples/lists of those. Anything else raises, so no cfg text can reach generated code."""
    return _flat(_value_node(value))


# ---------------------------------------------------------------------------------------------------
# Names


def _identifier(text: str, fallback: str) -> str:
    """`text` as a Python identifier (ASCII letters, digits, underscores), or `fallback` if nothing is left."""
    name = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:_MAX_LABEL].rstrip("_")
    if not name:
        return fallback
    if name[0].isdigit():
        name = f"layer_{name}"
    return f"{name}_" if keyword.iskeyword(name) else name


def _inert(text: str, limit: int = 80) -> str:
    """Text safe inside a comment or docstring: printable ASCII without quotes or backslashes."""
    clean = re.sub(r"[^A-Za-z0-9_.,:;+=@()\[\]{}<>/ -]", "?", text)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def class_name_error(name: str) -> str | None:
    """Why `name` cannot be the generated class's name, or None when it can."""
    if not IDENTIFIER.match(name):
        return f"class name {name!r} is not a Python identifier"
    if keyword.iskeyword(name) or name.startswith("__"):
        return f"class name {name!r} is reserved"
    return None


def default_class_name(file: str) -> str:
    """`yolov3-tiny.cfg` → `Yolov3Tiny`; `Network` when the stem has no ASCII letters or digits."""
    parts = re.split(r"[^A-Za-z0-9]+", Path(file).stem) if file != "<cfg>" else []
    name = "".join(part[:1].upper() + part[1:] for part in parts if part)
    if not name:
        return "Network"
    return f"Net{name}" if name[0].isdigit() or class_name_error(name) else name


def _labels(spec: Spec) -> dict[int, str]:
    """Each labelled layer's first label (`name=`, or `include.label` for included files)."""
    out: dict[int, str] = {}
    for label, index in spec.labels.items():
        out.setdefault(index, label)
    return out


# ---------------------------------------------------------------------------------------------------
# Layer calls


@dataclass(frozen=True)
class _Layer:
    """A validated layer, the module call that builds it and its label, if any."""

    spec: LayerSpec
    call: LayerCall
    label: str | None = None

    @property
    def index(self) -> int:
        return self.spec.index


def _call_node(call: LayerCall, cls_name: str) -> _Group:
    """`Cls(key=value, ...)`, leaving out arguments equal to the constructor's defaults."""
    defaults = _defaults(call.cls)
    items: list[_Node] = []
    for key, value in call.kwargs.items():
        if not IDENTIFIER.match(key) or keyword.iskeyword(key):
            raise ValueError(f"{call.cls.__name__}: keyword {key!r} cannot be written as an argument")
        try:
            node = _value_node(value, f"{key}=")
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{call.cls.__name__}({key}=...): {exc}") from None
        if key in defaults and _same(value, defaults[key]):
            continue
        items.append(node)
    return _Group(f"{cls_name}(", tuple(items), ")")


def _defaults(cls: type) -> dict[str, Any]:
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


def _same(a: Any, b: Any) -> bool:
    """Equal values of equal types (so `1` never stands in for `True`, nor a list for a tuple)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


InlineRule = Callable[[dict[str, Any], list[str]], "_Node | None"]


def _inline_route(kwargs: dict[str, Any], args: list[str]) -> _Node | None:
    """A route without channel groups is its input or a concatenation along channels."""
    if kwargs.get("groups", 1) != 1:
        return None
    return args[0] if len(args) == 1 else _Group("torch.cat(", (_Group("[", tuple(args), "]"), "dim=1"), ")")


def _inline_shortcut(kwargs: dict[str, Any], args: list[str]) -> _Node | None:
    """An unweighted, linear shortcut of equal channel counts is a plain sum."""
    plain = kwargs.get("weights_type", "none") == "none" and kwargs.get("activation_name", "linear") == "linear"
    return " + ".join(args) if plain and len(set(kwargs.get("channels", ()))) == 1 else None


#: Module classes whose plain configurations `forward` writes as expressions instead of calls.
_INLINE: dict[type[nn.Module], InlineRule] = {Route: _inline_route, Shortcut: _inline_shortcut}


# ---------------------------------------------------------------------------------------------------
# forward


def _saved_names(layers: Sequence[_Layer], outputs: Sequence[int], taken: set[str]) -> dict[int, str]:
    """A variable for each output (and the network input) that must outlive the next layer: read
    later, or returned."""
    readers: dict[int, set[int]] = {}
    for layer in layers:
        for source in layer.spec.sources:
            readers.setdefault(source, set()).add(layer.index)
    last = len(layers) - 1
    names: dict[int, str] = {}
    used = set(taken) | {"x"}
    for i, base in [(NETWORK_INPUT, "net_input"), *((layer.index, _variable_base(layer)) for layer in layers)]:
        if not (readers.get(i, set()) - {i + 1} or (i in outputs and i != last)):
            continue
        name = base if base not in used else f"{base}_{i}"
        while name in used:
            name += "_"
        used.add(name)
        names[i] = name
    return names


def _variable_base(layer: _Layer) -> str:
    """`<label>` or `<type>_<index>`, as an identifier."""
    fallback = _identifier(f"{layer.spec.section.type_name}_{layer.index}", f"layer_{layer.index}")
    return _identifier(layer.label, fallback) if layer.label else fallback


def _forward_lines(layers: Sequence[_Layer], spec: Spec, taken: set[str]) -> tuple[list[str], str]:
    """The body of `forward` (at two indents) and its return annotation.

    `x` always holds the latest layer's output; outputs read later also get a name, deleted after
    their last reader, so only live tensors are kept.
    """
    outputs = spec.outputs
    saved = _saved_names(layers, outputs, taken)
    last_reader = {source: layer.index for layer in layers for source in layer.spec.sources}
    returned = {saved[o] for o in outputs if o in saved}
    body = [f"{INDENT * 2}{saved[NETWORK_INPUT]} = x"] if NETWORK_INPUT in saved else []
    for layer in layers:
        i = layer.index
        args = ["x" if s == i - 1 else saved[s] for s in layer.spec.sources]
        body += _statement(layer, args)
        if i in saved:
            body.append(f"{INDENT * 2}{saved[i]} = x")
        dead = [saved[s] for s in dict.fromkeys(layer.spec.sources) if s in saved and last_reader[s] == i]
        body += _del_lines([name for name in dead if name not in returned])
    results = tuple(saved.get(i, "x") for i in outputs)
    if any(spec.layers[i].section.is_output for i in outputs) or len(outputs) != 1:
        return [*body, *_lines(_Group("[", results, "]"), 2, "return ")], "list[torch.Tensor]"
    return [*body, f"{INDENT * 2}return {results[0]}"], "torch.Tensor"


def _statement(layer: _Layer, args: list[str]) -> list[str]:
    """`x = <layer i applied to args>`, as a plain expression when the module allows it."""
    rule = _INLINE.get(layer.call.cls)
    node = rule(layer.call.kwargs, args) if rule else None
    if node == "x":
        return [f"{INDENT * 2}# {layer.index}: [{_inert(layer.spec.section.type_name, 40)}] passes x through"]
    if node is not None:
        lines = _lines(node, 2, "x = ")
        if all(len(line) <= LINE_LENGTH for line in lines):
            return [f"{INDENT * 2}# {layer.index}: [{_inert(layer.spec.section.type_name, 40)}]", *lines]
    return _lines(_Group(f"self.layers[{layer.index}](", tuple(args), ")"), 2, "x = ")


def _del_lines(names: list[str]) -> list[str]:
    """`del a, b` statements, split so each fits on a line."""
    lines: list[str] = []
    current: list[str] = []
    for name in names:
        if current and len(INDENT * 2 + "del " + ", ".join([*current, name])) > LINE_LENGTH:
            lines.append(INDENT * 2 + "del " + ", ".join(current))
            current = []
        current.append(name)
    return [*lines, INDENT * 2 + "del " + ", ".join(current)] if current else lines


# ---------------------------------------------------------------------------------------------------
# Imports (default) and inlined sources (standalone)


def _is_torch(cls: type) -> bool:
    return cls.__module__.split(".")[0] == "torch"


def _check_importable(cls: type) -> None:
    module = cls.__module__
    if cls.__qualname__ != cls.__name__ or module == "__main__" or not all(map(IDENTIFIER.match, module.split("."))):
        raise ValueError(f"module class {module}.{cls.__qualname__} is not importable by name")


@dataclass
class _Imports:
    """Import lines by section (future, stdlib, third party, first party), merged and sorted like isort."""

    straight: dict[str, set[str]] = field(default_factory=dict)
    froms: dict[str, dict[str, set[str]]] = field(default_factory=dict)

    def add_import(self, module: str, asname: str | None = None) -> None:
        text = f"import {module}" + (f" as {asname}" if asname and asname != module else "")
        self.straight.setdefault(_section_of(module), set()).add(text)

    def add_from(self, module: str, name: str, asname: str | None = None) -> None:
        member = name + (f" as {asname}" if asname and asname != name else "")
        self.froms.setdefault(_section_of(module), {}).setdefault(module, set()).add(member)

    def lines(self) -> list[str]:
        out: list[str] = []
        for section in ("future", "stdlib", "third", "first"):
            block = sorted(self.straight.get(section, ()), key=str.lower)
            for module, members in sorted(self.froms.get(section, {}).items(), key=lambda kv: kv[0].lower()):
                block += _from_lines(module, sorted(members, key=_member_key))
            if block:
                out += [*block, ""]
        return out[:-1]


def _from_lines(module: str, members: list[str]) -> list[str]:
    flat = f"from {module} import {', '.join(members)}"
    if len(flat) <= LINE_LENGTH:
        return [flat]
    return [f"from {module} import (", *(f"{INDENT}{member}," for member in members), ")"]


def _member_key(member: str) -> tuple[int, str]:
    """isort's order-by-type: CONSTANTS, then Classes, then functions and modules."""
    name = member.split(" as ")[0]
    kind = 0 if name.isupper() and len(name) > 1 else 1 if name[:1].isupper() else 2
    return kind, name


def _section_of(module: str) -> str:
    top = module.split(".")[0]
    if top == "__future__":
        return "future"
    if top == "netcfg":
        return "first"
    return "stdlib" if top in sys.stdlib_module_names else "third"


@dataclass
class _Source:
    """A module's top-level definitions and import bindings, parsed once."""

    name: str
    module: ModuleType
    lines: list[bytes]
    defs: dict[str, ast.stmt]
    imports: dict[str, tuple[str, str | None, ast.stmt]]


@cache
def _source(name: str) -> _Source:
    module = importlib.import_module(name)
    text = inspect.getsource(module)
    tree = ast.parse(text)
    defs: dict[str, ast.stmt] = {}
    imports: dict[str, tuple[str, str | None, ast.stmt]] = {}
    package = module.__package__ or ""
    statements = list(tree.body)
    for stmt in tree.body:
        if isinstance(stmt, ast.If):
            statements += [s for s in stmt.body if isinstance(s, (ast.Import, ast.ImportFrom))]
    for stmt in statements:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defs[stmt.name] = stmt
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for target in targets:
                for node in ast.walk(target):
                    if isinstance(node, ast.Name):
                        defs[node.id] = stmt
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            imports.update(_bindings(stmt, package))
    return _Source(name, module, text.encode().splitlines(keepends=True), defs, imports)


def _bindings(stmt: ast.Import | ast.ImportFrom, package: str) -> dict[str, tuple[str, str | None, ast.stmt]]:
    """Bound name → (absolute module, imported attribute or None for a module, statement)."""
    out: dict[str, tuple[str, str | None, ast.stmt]] = {}
    if isinstance(stmt, ast.Import):
        for alias in stmt.names:
            if alias.asname:
                out[alias.asname] = (alias.name, None, stmt)
            else:
                top = alias.name.split(".")[0]
                out[top] = (top, None, stmt)
        return out
    base = importlib.util.resolve_name("." * stmt.level + (stmt.module or ""), package) if stmt.level else stmt.module
    for alias in stmt.names:
        out[alias.asname or alias.name] = (base or "", alias.name, stmt)
    return out


@dataclass(frozen=True)
class _Ref:
    """What a name in inlined code refers to: an inlined definition, an inlinable module or an import."""

    kind: str  # "def", "module" or "external"
    module: str
    name: str | None = None


class _Inliner:
    """Collects, in dependency order, every definition the used module classes need, and the imports
    of everything outside their packages."""

    def __init__(self, packages: set[str], imported: dict[str, object]):
        self.packages = packages
        self.order: list[tuple[str, str]] = []
        self._seen: set[tuple[str, str]] = set()
        #: External name → (object, import statement or None when already imported, its module).
        self.externals: dict[str, tuple[object, ast.stmt | None, str]] = {
            name: (obj, None, "") for name, obj in imported.items()
        }
        self.final: dict[tuple[str, str], str] = {}

    def inlinable(self, module: str) -> bool:
        return module.split(".")[0] in self.packages

    def resolve(self, module: str, name: str) -> _Ref | None:
        src = _source(module)
        if name in src.defs:
            return _Ref("def", module, name)
        if name not in src.imports:
            return None
        target, attr, _ = src.imports[name]
        obj = getattr(src.module, name, None)
        if isinstance(obj, ModuleType):
            return _Ref("module", obj.__name__) if self.inlinable(obj.__name__) else _Ref("external", module, name)
        if attr is not None and self.inlinable(target):
            ref = self.resolve(target, attr)
            if ref is None:
                raise ValueError(f"cannot inline {target}.{attr} (imported by {module})")
            return ref
        return _Ref("external", module, name)

    def require(self, module: str, name: str) -> None:
        """Inline `module.name` after everything it refers to."""
        key = (module, name)
        if key in self._seen:
            return
        self._seen.add(key)
        refs = [ref for ref, _node in self._references(module, _source(module).defs[name])]
        for ref in refs:
            if ref.kind == "external":
                self._external(ref.module, ref.name)
        for ref in sorted({r for r in refs if r.kind == "def"}, key=_position):
            self.require(ref.module, ref.name)
        self.order.append(key)

    def _external(self, module: str, name: str) -> None:
        obj = getattr(_source(module).module, name)
        known = self.externals.get(name)
        if known is not None and known[0] is not obj:
            raise ValueError(f"{module} binds {name!r} to a different object than another inlined module")
        if known is None:
            self.externals[name] = (obj, _source(module).imports[name][2], module)

    def _references(self, module: str, stmt: ast.stmt) -> list[tuple[_Ref, ast.expr]]:
        """Every name (or `module.attr` of an inlinable module) in `stmt` that refers to a global."""
        local = _local_imports(stmt, _source(module).module.__package__ or "")
        refs: list[tuple[_Ref, ast.expr]] = []
        modules_used: set[int] = set()
        for node in ast.walk(stmt):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                ref = self._name_ref(module, node.value.id, local)
                if ref is not None and ref.kind == "module":
                    inner = self.resolve(ref.module, node.attr)
                    if inner is None or inner.kind != "def":
                        raise ValueError(f"cannot inline {ref.module}.{node.attr} used in {module}")
                    refs.append((inner, node))
                    modules_used.add(id(node.value))
            elif isinstance(node, ast.Name) and id(node) not in modules_used:
                ref = self._name_ref(module, node.id, local)
                if ref is not None and ref.kind == "module":
                    raise ValueError(f"cannot inline {module}: module {ref.module} is used other than as `m.name`")
                if ref is not None:
                    refs.append((ref, node))
        return refs

    def _name_ref(self, module: str, name: str, local: dict[str, tuple[str, str | None]]) -> _Ref | None:
        if name in local:
            target, attr = local[name]
            if not self.inlinable(target):
                return None
            return _Ref("module", target) if attr is None else self.resolve(target, attr)
        return self.resolve(module, name)

    def assign_names(self, reserved: set[str]) -> None:
        """Final names: the original, or `<name>_<module>` when two modules define the same name."""
        taken = set(reserved) | set(self.externals)
        for module, name in self.order:
            final = name
            if final in taken:
                final = f"{name}_{module.rsplit('.', 1)[-1]}"
            while final in taken:
                final += "_"
            taken.add(final)
            self.final[(module, name)] = final

    def render(self, module: str, name: str) -> str:
        """The statement's source with local imports of inlined code dropped and names remapped."""
        src = _source(module)
        stmt = src.defs[name]
        start = min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", []))])
        edits: list[tuple[int, int, int, bytes]] = []
        conflicts = _local_bindings(stmt)
        for ref, node in self._references(module, stmt):
            if ref.kind != "def":
                continue
            final = self.final[(ref.module, ref.name)]
            old = node.id if isinstance(node, ast.Name) else None
            if old == final:
                continue
            if old in conflicts or node.lineno != node.end_lineno:
                raise ValueError(f"cannot rename {old or ref.name!r} to {final!r} inside {module}.{name}")
            edits.append((node.lineno, node.col_offset, node.end_col_offset, final.encode()))
        own = self.final[(module, name)]
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and own != name:
            line = src.lines[stmt.lineno - 1]
            match = re.compile(rb"(?:def|class)\s+(" + name.encode() + rb")\b").search(line, stmt.col_offset)
            edits.append((stmt.lineno, match.start(1), match.end(1), own.encode()))
        lines = list(src.lines[start - 1 : stmt.end_lineno])
        for lineno, begin, end, new in sorted(edits, reverse=True):
            row = lineno - start
            lines[row] = lines[row][:begin] + new + lines[row][end:]
        for node in _inlined_local_imports(stmt, self, src.module.__package__ or ""):
            _drop_lines(lines, node.lineno - start, node.end_lineno - start)
        return b"".join(lines).decode().rstrip() + "\n"

    def import_lines(self, imports: _Imports) -> None:
        """Add the import of every external name the inlined code uses."""
        for name, (_obj, stmt, module) in sorted(self.externals.items()):
            if stmt is None:
                continue
            if isinstance(stmt, ast.Import):
                alias = next(a for a in stmt.names if (a.asname or a.name.split(".")[0]) == name)
                imports.add_import(alias.name, alias.asname)
            else:
                target, attr, _ = _bindings(stmt, _source(module).module.__package__ or "")[name]
                imports.add_from(target, attr or name, name)


def _drop_lines(lines: list[bytes], first: int, last: int) -> None:
    """Blank out rows first..last, and the blank row after them when they opened a block."""
    for row in range(first, last + 1):
        lines[row] = b""
    before = next((line for line in reversed(lines[:first]) if line.strip()), b"")
    if last + 1 < len(lines) and not lines[last + 1].strip() and before.rstrip().endswith(b":"):
        lines[last + 1] = b""


def _position(ref: _Ref) -> tuple[str, int]:
    """Where a definition is written, to inline in the order of the original modules."""
    return ref.module, _source(ref.module).defs[ref.name].lineno


def _local_imports(stmt: ast.stmt, package: str) -> dict[str, tuple[str, str | None]]:
    """Names bound by import statements nested inside `stmt` (function-level imports)."""
    out: dict[str, tuple[str, str | None]] = {}
    for node in ast.walk(stmt):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and node is not stmt:
            out.update({k: (m, a) for k, (m, a, _) in _bindings(node, package).items()})
    return out


def _inlined_local_imports(stmt: ast.stmt, inliner: _Inliner, package: str) -> list[ast.stmt]:
    """Nested import statements whose every name is inlined, so their lines must go."""
    out = []
    for node in ast.walk(stmt):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and node is not stmt:
            targets = [m for m, _a, _s in _bindings(node, package).values()]
            if all(inliner.inlinable(m) for m in targets):
                out.append(node)
    return out


def _local_bindings(stmt: ast.stmt) -> set[str]:
    """Parameter and nested definition names inside `stmt`: renaming a same-named global is unsafe."""
    names: set[str] = set()
    for node in ast.walk(stmt):
        if isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node is not stmt:
            names.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            names.update(node.names)
    return names


# ---------------------------------------------------------------------------------------------------
# The module


def to_python(
    cfg: CfgSource | Spec, class_name: str | None = None, standalone: bool = False, **net_overrides: Any
) -> str:
    """Python source of one `nn.Module` equivalent to `netcfg.build(cfg)`, with the same state_dict.

    `standalone=True` inlines netcfg's block modules so the file needs only torch. Keyword arguments
    replace `[net]` keys, as in `build`.
    """
    spec = cfg if isinstance(cfg, Spec) else parse(cfg, **net_overrides)
    labels = _labels(spec)
    layers = [
        _Layer(layer, layer.section.layer(list(layer.input_shapes), spec.context(layer)), labels.get(layer.index))
        for layer in spec.layers
    ]
    classes = list(dict.fromkeys(layer.call.cls for layer in layers))
    for cls in classes:
        _check_importable(cls)
    imports = _Imports()
    imports.add_from("__future__", "annotations")
    imports.add_import("torch")
    imports.add_from("torch", "nn")
    space = _inline_classes(classes, imports) if standalone else _import_classes(classes, imports)
    class_name = _choose_class_name(class_name, spec.file, space.globals)
    forward, returns = _forward_lines(layers, spec, {"self", class_name, *space.globals})
    head = "\n".join([*_header(spec), *imports.lines()])
    parts = [*space.definitions, "\n".join(_class_lines(spec, layers, space.names, class_name, forward, returns))]
    body = "\n\n\n".join(part.rstrip("\n") for part in parts)
    # isort's rule: two blank lines after the imports before a def or class, else one.
    gap = "\n\n\n" if re.match(r"(@|class |def |async def )", body) else "\n\n"
    return head + gap + body + "\n"


def _choose_class_name(requested: str | None, file: str, taken: set[str]) -> str:
    """The requested class name after validation, or one derived from the cfg file name."""
    if requested is None:
        name = default_class_name(file)
        while name in taken:
            name += "Net"
        return name
    if error := class_name_error(requested):
        raise ValueError(error)
    if requested in taken:
        raise ValueError(f"class name {requested!r} collides with a name the generated module defines or imports")
    return requested


@dataclass
class _Namespace:
    """How the generated module reaches the module classes: their names, inlined sources, globals."""

    names: dict[type, str]
    definitions: list[str]
    globals: set[str]


def _torch_names(classes: list[type], imports: _Imports) -> dict[type, str]:
    """`nn.X` for torch.nn classes, else an import of the class from its torch module."""
    names = {}
    for cls in filter(_is_torch, classes):
        if getattr(nn, cls.__name__, None) is cls:
            names[cls] = f"nn.{cls.__name__}"
        else:
            names[cls] = cls.__name__
            imports.add_from(cls.__module__, cls.__name__)
    return names


def _import_classes(classes: list[type], imports: _Imports) -> _Namespace:
    """Default mode: import each block class from its netcfg module (aliased if names clash)."""
    names = _torch_names(classes, imports)
    used = {"torch", "nn", "annotations", *names.values()}
    for cls in classes:
        if _is_torch(cls):
            continue
        local = cls.__name__
        if local in used:
            local = f"{cls.__name__}_{cls.__module__.rsplit('.', 1)[-1]}"
        while local in used:
            local += "_"
        used.add(local)
        names[cls] = local
        imports.add_from(cls.__module__, cls.__name__, local)
    return _Namespace(names, [], used)


def _inline_classes(classes: list[type], imports: _Imports) -> _Namespace:
    """Standalone mode: the source of each block class and of everything it refers to in its package."""
    import torch

    names = _torch_names(classes, imports)
    own = [cls for cls in classes if not _is_torch(cls)]
    inliner = _Inliner({cls.__module__.split(".")[0] for cls in own}, {"torch": torch, "nn": nn})
    for cls in sorted(own, key=lambda cls: _position(_Ref("def", cls.__module__, cls.__name__))):
        inliner.require(cls.__module__, cls.__name__)
    inliner.assign_names({"annotations", *names.values()})
    inliner.import_lines(imports)
    names.update({cls: inliner.final[(cls.__module__, cls.__name__)] for cls in own})
    definitions = [inliner.render(module, name) for module, name in inliner.order]
    return _Namespace(names, definitions, {"annotations", *names.values(), *inliner.final.values(), *inliner.externals})


def _cfg_name(file: str) -> str:
    """The cfg's file name, made safe for comments and docstrings."""
    return _inert(Path(file).name if file != "<cfg>" else "cfg text", 60)


def _header(spec: Spec) -> list[str]:
    source = _cfg_name(spec.file)
    c, h, w = spec.input_shape
    return [
        f"# Generated by netcfg from {source} (input {c}x{h}x{w}).",
        "# layers[i] is darknet layer i; state_dict() keys and shapes match netcfg.build() of the same cfg.",
    ]


def _class_lines(
    spec: Spec, layers: list[_Layer], names: dict[type, str], class_name: str, forward: list[str], returns: str
) -> list[str]:
    out = [
        f"class {class_name}(nn.Module):",
        f'{INDENT}"""The network of {_cfg_name(spec.file)}, one module per darknet layer."""',
        "",
        f"{INDENT}def __init__(self) -> None:",
        f"{INDENT * 2}super().__init__()",
        f"{INDENT * 2}self.layers = nn.ModuleList(",
        f"{INDENT * 3}[",
    ]
    out += _layer_entries(layers, names)
    out += [f"{INDENT * 3}]", f"{INDENT * 2})", ""]
    out += [f"{INDENT}def forward(self, x: torch.Tensor) -> {returns}:", *forward]
    return out


def _layer_entries(layers: list[_Layer], names: dict[type, str]) -> list[str]:
    """Each layer's comment and constructor call; a value that cannot be printed is a CfgError at its layer."""
    out: list[str] = []
    items: list[CfgItem] = []
    for layer in layers:
        try:
            call = _call_node(layer.call, names[layer.call.cls])
        except (TypeError, ValueError) as exc:
            raw = layer.spec.raw
            items.append(
                CfgItem(f"cannot write as Python: {exc}", raw.file, raw.line, raw.column, layer.index, raw.name)
            )
            continue
        out += [f"{INDENT * 4}# {_layer_comment(layer)}", *_lines(call, 4, trail=",")]
    if items:
        raise CfgError(items)
    return out


def _layer_comment(layer: _Layer) -> str:
    """`<index>: [<type>] <label> at <file>:<line> -> <C>x<H>x<W>`."""
    named = f" {_identifier(layer.label, '?')}" if layer.label else ""
    raw = layer.spec.raw
    file = _inert(Path(raw.file).name if raw.file != "<cfg>" else "cfg", 50)
    shape = "x".join(map(str, layer.spec.shape))
    return f"{layer.index}: [{_inert(layer.spec.section.type_name, 40)}]{named} at {file}:{raw.line} -> {shape}"


# ---------------------------------------------------------------------------------------------------
# Command line


CONVERT_HELP = "write a cfg as a plain PyTorch module (Python source)"


def convert_arguments(parser: argparse.ArgumentParser) -> None:
    """The `convert` subcommand's arguments (usable as a `netcfg.cli.Command`'s `arguments`)."""
    parser.add_argument("file", metavar="FILE", help="a cfg file or a bundled name such as yolov3-tiny")
    parser.add_argument("-o", "--output", help="write here instead of standard output")
    parser.add_argument(
        "--class-name", type=_class_name_argument, help="the nn.Module class's name (default: from the file name)"
    )
    parser.add_argument("--standalone", action="store_true", help="inline netcfg's block modules: needs only torch")
    parser.add_argument("--width", type=int, help="override [net] width")
    parser.add_argument("--height", type=int, help="override [net] height")


def _class_name_argument(value: str) -> str:
    if error := class_name_error(value):
        raise argparse.ArgumentTypeError(error)
    return value


def run_convert(args: argparse.Namespace) -> int:
    """Run `convert` on parsed arguments (usable as a `netcfg.cli.Command`'s `run`)."""
    overrides = {k: v for k, v in (("width", args.width), ("height", args.height)) if v is not None}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CfgWarning)
        try:
            source = to_python(args.file, args.class_name, args.standalone, **overrides)
        except CfgError as exc:
            print(exc, file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"{args.file}: cannot read: {exc.strerror or exc}", file=sys.stderr)
            return 1
        except ValueError as exc:
            print(f"netcfg convert: error: {exc}", file=sys.stderr)
            return 2
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    if args.output is None:
        sys.stdout.write(source)
        return 0
    try:
        Path(args.output).write_text(source, encoding="utf-8")
    except OSError as exc:
        print(f"{args.output}: cannot write: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
