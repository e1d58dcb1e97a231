"""Standalone mode: the source of every module class used and, transitively, of every module-level
name it refers to in its package (functions, classes, constants), dependencies first.

Each inlined statement's names are resolved with `ast` against its module's top-level definitions
and imports, through `from .x import y` and `module.attr` (both rewritten away). Two definitions with
one name are renamed `<name>_<module>`. Imports of anything else (torch, stdlib) go to the module's
`Imports`, so the file needs only torch.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from types import ModuleType

import torch
from torch import nn

from .imports import Imports
from .sources import bindings, local_bindings, local_imports, source


@dataclass(frozen=True)
class _Ref:
    """What a name in inlined code refers to: an inlined definition, an inlinable module or an import."""

    kind: str  # "def", "module" or "external"
    module: str
    name: str | None = None


class Inliner:
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
        src = source(module)
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
        refs = [ref for ref, _node in self._references(module, source(module).defs[name])]
        for ref in refs:
            if ref.kind == "external":
                self._external(ref.module, ref.name)
        for ref in sorted({r for r in refs if r.kind == "def"}, key=_position):
            self.require(ref.module, ref.name)
        self.order.append(key)

    def _external(self, module: str, name: str) -> None:
        obj = getattr(source(module).module, name)
        known = self.externals.get(name)
        if known is not None and known[0] is not obj:
            raise ValueError(f"{module} binds {name!r} to a different object than another inlined module")
        if known is None:
            self.externals[name] = (obj, source(module).imports[name][2], module)

    def _references(self, module: str, stmt: ast.stmt) -> list[tuple[_Ref, ast.expr]]:
        """Every name (or `module.attr` of an inlinable module) in `stmt` that refers to a global."""
        local = local_imports(stmt, source(module).module.__package__ or "")
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
        src = source(module)
        stmt = src.defs[name]
        start = min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", []))])
        edits: list[tuple[int, int, int, bytes]] = []
        conflicts = local_bindings(stmt)
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

    def add_imports(self, imports: Imports) -> None:
        """Add the import of every external name the inlined code uses."""
        for name, (_obj, stmt, module) in sorted(self.externals.items()):
            if stmt is None:
                continue
            if isinstance(stmt, ast.Import):
                alias = next(a for a in stmt.names if (a.asname or a.name.split(".")[0]) == name)
                imports.add(alias.name, alias=alias.asname)
            else:
                target, attr, _ = bindings(stmt, source(module).module.__package__ or "")[name]
                imports.add(target, attr or name, name)


def _drop_lines(lines: list[bytes], first: int, last: int) -> None:
    """Blank out rows first..last, and the blank row after them when they opened a block."""
    for row in range(first, last + 1):
        lines[row] = b""
    before = next((line for line in reversed(lines[:first]) if line.strip()), b"")
    if last + 1 < len(lines) and not lines[last + 1].strip() and before.rstrip().endswith(b":"):
        lines[last + 1] = b""


def _position(ref: _Ref) -> tuple[str, int]:
    """Where a definition is written, to inline in the order of the original modules."""
    return ref.module, source(ref.module).defs[ref.name].lineno


def _inlined_local_imports(stmt: ast.stmt, inliner: Inliner, package: str) -> list[ast.stmt]:
    """Nested import statements whose every name is inlined, so their lines must go."""
    out = []
    for node in ast.walk(stmt):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and node is not stmt:
            targets = [m for m, _a, _s in bindings(node, package).values()]
            if all(inliner.inlinable(m) for m in targets):
                out.append(node)
    return out


def inline_classes(
    classes: list[type], reserved: set[str], imports: Imports
) -> tuple[dict[type, str], list[str], set[str]]:
    """Each class's final name, the inlined definitions in order, and every global they bind or use;
    the imports of what they use from outside their packages go to `imports`."""
    inliner = Inliner({cls.__module__.split(".")[0] for cls in classes}, {"torch": torch, "nn": nn})
    for cls in sorted(classes, key=lambda cls: _position(_Ref("def", cls.__module__, cls.__name__))):
        inliner.require(cls.__module__, cls.__name__)
    inliner.assign_names(reserved)
    inliner.add_imports(imports)
    names = {cls: inliner.final[(cls.__module__, cls.__name__)] for cls in classes}
    definitions = [inliner.render(module, name) for module, name in inliner.order]
    return names, definitions, {*inliner.final.values(), *inliner.externals}
