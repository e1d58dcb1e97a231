"""Errors and warnings carrying the cfg location they are about."""

from __future__ import annotations

from dataclasses import dataclass


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
