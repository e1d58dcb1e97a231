"""Errors and warnings carrying the cfg location they are about."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .reader import RawSection


@dataclass(frozen=True)
class CfgItem:
    """One problem in a cfg: where it is (file, line, column, layer, section, key) and what."""

    message: str
    file: str = "<cfg>"
    line: int = 0
    column: int = 0
    layer: int | None = None
    section: str | None = None
    key: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}: " if self.line else f"{self.file}: "
        if self.section is not None:
            idx = "" if self.layer is None else f" #{self.layer}"
            where += f"[{self.section}{idx}] "
        if self.key:
            where += f"{self.key}: "
        return where + self.message


class NetcfgError(Exception):
    """Base of every error netcfg raises on purpose."""


class CfgError(NetcfgError, ValueError):
    """Every problem found in a cfg file, reported together."""

    def __init__(self, items: list[CfgItem]):
        self.items = list(items)
        super().__init__("\n".join(str(item) for item in self.items))


class WeightsError(NetcfgError, ValueError):
    """A darknet .weights file that does not fit the network; nothing was loaded."""


class CfgWarning(UserWarning):
    """Something legal but suspicious in a cfg, such as a key given twice."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`" (did you mean 'x'?)"` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Diagnostics:
    """Collects CfgItems located by raw section (in its own file) and key; a problem repeated by
    `repeat=` copies is reported once."""

    def __init__(self, file: str):
        self.file = file
        self.items: list[CfgItem] = []
        self._seen: set[tuple] = set()

    def add(self, raw: RawSection, index: int | None, message: str, key: str | None = None) -> None:
        line, col = raw.where(key)
        item = CfgItem(message, raw.file or self.file, line, col, index, raw.name, key)
        place = (item.message, item.file, item.line, item.column, item.key)
        if place not in self._seen:
            self._seen.add(place)
            self.items.append(item)
