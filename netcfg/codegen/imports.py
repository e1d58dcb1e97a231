"""The generated module's imports, in the order ruff's isort keeps: `__future__`, stdlib, third
party, netcfg; in each, `import m` before `from m import ...`, members CONSTANTS, Classes, rest."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from itertools import groupby

from .layout import INDENT, LINE_LENGTH

#: (module, imported name or None for `import module`, alias or None)
Entry = tuple[str, str | None, str | None]


@dataclass
class Imports:
    """A set of import statements, written as one sorted block."""

    entries: set[Entry] = field(default_factory=set)

    def add(self, module: str, name: str | None = None, alias: str | None = None) -> None:
        self.entries.add((module, name, None if alias in (name, module) else alias))

    def lines(self) -> list[str]:
        """The import block, one blank line between sections."""
        out: list[str] = []
        for _, section in groupby(sorted(self.entries, key=_key), key=lambda e: _key(e)[0]):
            out += [""] if out else []
            for (module, is_from), group in groupby(section, key=lambda e: (e[0], e[1] is not None)):
                entries = list(group)
                if is_from:
                    out += _from(module, [_as(name, alias) for _, name, alias in entries])
                else:
                    out += [f"import {_as(module, alias)}" for _, _, alias in entries]
        return out


def _key(entry: Entry) -> tuple[int, bool, str, tuple[int, str]]:
    module, name, _ = entry
    top = module.split(".")[0]
    section = 0 if top == "__future__" else 3 if top == "netcfg" else 1 if top in sys.stdlib_module_names else 2
    return section, name is not None, module.lower(), _member_key(name or "")


def _member_key(name: str) -> tuple[int, str]:
    """Order by type: CONSTANTS, then Classes, then functions and modules."""
    return (0 if name.isupper() and len(name) > 1 else 1 if name[:1].isupper() else 2), name


def _as(name: str, alias: str | None) -> str:
    return f"{name} as {alias}" if alias else name


def _from(module: str, members: list[str]) -> list[str]:
    flat = f"from {module} import {', '.join(members)}"
    if len(flat) <= LINE_LENGTH:
        return [flat]
    return [f"from {module} import (", *(f"{INDENT}{member}," for member in members), ")"]
