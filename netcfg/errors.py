"""Errors and warnings carrying the cfg location they are about."""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
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


#: How many problems a CfgError's message lists; `.items` keeps them all.
SHOWN_ITEMS = 100


class CfgError(NetcfgError, ValueError):
    """Every problem found in a cfg file, reported together (the message lists the first 100)."""

    def __init__(self, items: list[CfgItem]):
        self.items = list(items)
        lines = [str(item) for item in self.items[:SHOWN_ITEMS]]
        if len(self.items) > SHOWN_ITEMS:
            lines.append(f"... and {len(self.items) - SHOWN_ITEMS} more")
        super().__init__("\n".join(lines))


class WeightsError(NetcfgError, ValueError):
    """A darknet .weights file that does not fit the network; nothing was loaded."""


class CfgWarning(UserWarning):
    """Something legal but suspicious in a cfg, such as a key given twice or a key darknet ignores."""


#: Words longer than this, or more choices than this, get no suggestion: difflib is quadratic.
SUGGEST_LIMIT = 64
SUGGEST_CHOICES = 2000
#: Word-to-choice comparisons (some microseconds each) `closest` may make under one
#: `suggestion_budget`, i.e. one parse: a cfg of thousands of junk keys or labels would otherwise spend
#: minutes on suggestions. Past it, problems are reported without one, and a near miss of a darknet
#: section's key is no longer told from any other unknown key (both warn).
SUGGESTION_BUDGET = 100_000
#: CfgWarnings one parse issues; past these, one more says how many were left out.
MAX_WARNINGS = 1000

_budget: ContextVar[list[int] | None] = ContextVar("netcfg_suggestion_budget", default=None)


@contextmanager
def suggestion_budget(comparisons: int = SUGGESTION_BUDGET) -> Iterator[None]:
    """Bound the comparisons `closest` makes inside this block (per thread and task)."""
    token = _budget.set([comparisons])
    try:
        yield
    finally:
        _budget.reset(token)


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to `word` (difflib ratio ≥ 0.6), or None; bounded work on huge inputs."""
    left = _budget.get()
    if len(word) > SUGGEST_LIMIT or (left is not None and left[0] <= 0):
        return None
    options = sorted(choices)
    if len(options) > SUGGEST_CHOICES:
        return None
    if left is not None:
        left[0] -= len(options)
    close = difflib.get_close_matches(word, [o for o in options if len(o) <= SUGGEST_LIMIT], n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`" (did you mean 'x'?)"` for the closest choice, or an empty string."""
    close = closest(word, choices)
    return f" (did you mean {close!r}?)" if close else ""


class CappedWarnings:
    """CfgWarnings issued up to MAX_WARNINGS, the rest counted; `close` then says how many more
    `there_are` (e.g. "warnings like these are not shown")."""

    def __init__(self, file: str, there_are: str):
        self.file, self.there_are, self.count = file, there_are, 0

    def warn(self, message: str, stacklevel: int) -> None:
        self.count += 1
        if self.count <= MAX_WARNINGS:
            warnings.warn(message, CfgWarning, stacklevel=stacklevel)

    def skip(self, count: int) -> None:
        """Count `count` more warnings, past the cap, whose messages were never made."""
        self.count += count

    def close(self, stacklevel: int) -> None:
        if self.count > MAX_WARNINGS:
            message = f"{self.file}: {self.count - MAX_WARNINGS} more {self.there_are}"
            warnings.warn(message, CfgWarning, stacklevel=stacklevel)


class Diagnostics:
    """Collects CfgItems located by raw section (in its own file) and key; a problem repeated by
    `repeat=` copies is reported once. Warnings past the first MAX_WARNINGS are only counted."""

    def __init__(self, file: str):
        self.file = file
        self.items: list[CfgItem] = []
        self.warned: list[CfgItem] = []
        self.unshown = 0
        self._seen: set[tuple] = set()

    def add(self, raw: RawSection, index: int | None, message: str, key: str | None = None) -> None:
        """Record a problem at `key` of `raw` (at its header when the key is absent)."""
        item = self._item(raw, index, message, key)
        if self._first(True, message, item.file, item.line, item.column, key):
            self.items.append(item)

    def warn(self, raw: RawSection, index: int | None, message: str, key: str | None = None) -> None:
        """Record something legal but suspicious; `emit_warnings` reports it as a CfgWarning. Past
        MAX_WARNINGS no CfgItem is made: a cfg of a million junk keys spent seconds on them."""
        if len(self.warned) < MAX_WARNINGS:
            item = self._item(raw, index, message, key)
            if self._first(False, message, item.file, item.line, item.column, key):
                self.warned.append(item)
        elif self._first(False, message, raw.file or self.file, *raw.where(key), key):
            self.unshown += 1

    def emit_warnings(self) -> None:
        """Issue the recorded warnings, once each, located as a CfgItem is; then how many more there were."""
        shown = CappedWarnings(self.file, "warnings like these are not shown")
        for item in self.warned:
            shown.warn(str(item), stacklevel=5)
        shown.skip(self.unshown)
        shown.close(stacklevel=5)

    def _item(self, raw: RawSection, index: int | None, message: str, key: str | None) -> CfgItem:
        line, col = raw.where(key)
        return CfgItem(message, raw.file or self.file, line, col, index, raw.name, key)

    def _first(self, *place: object) -> bool:
        """Whether this (error?, message, file, line, column, key) is new: `repeat=` copies repeat theirs."""
        if place in self._seen:
            return False
        self._seen.add(place)
        return True
