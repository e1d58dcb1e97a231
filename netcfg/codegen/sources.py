"""A module's source as the inliner needs it: its top-level definitions and what its imports bind."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
from dataclasses import dataclass
from functools import cache
from types import ModuleType


@dataclass
class Source:
    """A module's top-level definitions and import bindings, parsed once."""

    name: str
    module: ModuleType
    lines: list[bytes]
    defs: dict[str, ast.stmt]
    imports: dict[str, tuple[str, str | None, ast.stmt]]


@cache
def source(name: str) -> Source:
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
            imports.update(bindings(stmt, package))
    return Source(name, module, text.encode().splitlines(keepends=True), defs, imports)


def bindings(stmt: ast.Import | ast.ImportFrom, package: str) -> dict[str, tuple[str, str | None, ast.stmt]]:
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


def local_imports(stmt: ast.stmt, package: str) -> dict[str, tuple[str, str | None]]:
    """Names bound by import statements nested inside `stmt` (function-level imports)."""
    out: dict[str, tuple[str, str | None]] = {}
    for node in ast.walk(stmt):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and node is not stmt:
            out.update({k: (m, a) for k, (m, a, _) in bindings(node, package).items()})
    return out


def local_bindings(stmt: ast.stmt) -> set[str]:
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
