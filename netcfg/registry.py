"""The registry of section types: registration by name and alias, and lookup.

Built-in types register on import of `netcfg.sections`; a user registers their own the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .section import Section


@dataclass(frozen=True)
class SectionType:
    """A registered section: its name, aliases and pydantic model."""

    name: str
    aliases: tuple[str, ...]
    model: type[Section]


_TYPES: dict[str, SectionType] = {}
_BY_NAME: dict[str, SectionType] = {}

S = TypeVar("S", bound=type[Section])


def register(name: str, *aliases: str, family: str | None = None) -> Callable[[S], S]:
    """Class decorator registering a Section model under `name` and its aliases."""

    def decorate(model: S) -> S:
        for key in (name, *aliases):
            first = _BY_NAME.get(key)
            if first is not None:
                where = f"{first.model.__module__}.{first.model.__qualname__}"
                raise ValueError(f"section name {key!r} is already registered by {where}")
        model.type_name = name
        if family is not None:
            model.family = family
        entry = SectionType(name, tuple(aliases), model)
        _TYPES[name] = entry
        for key in (name, *aliases):
            _BY_NAME[key] = entry
        return model

    return decorate


def lookup(name: str) -> SectionType | None:
    """The section type registered under `name` (or an alias), if any."""
    return _BY_NAME.get(name)


def section_types() -> list[SectionType]:
    """Every registered section type, in registration order."""
    return list(_TYPES.values())
