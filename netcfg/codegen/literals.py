"""Plain values → Python source. The only way cfg values reach generated code, so anything that
is not a finite number, bool, None, identifier-like string or a tuple/list of those is refused."""

from __future__ import annotations

import math
import re
from typing import Any

from .layout import Group, Node, flat

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def literal(value: Any) -> str:
    """Python source for a plain value: finite int/float (or ±inf), bool, None, identifier-like str,
    or tuples/lists of those. Anything else raises, so no cfg text can reach generated code."""
    return flat(value_node(value))


def value_node(value: Any, prefix: str = "") -> Node:
    """A plain value as a layout node; raises for anything a cfg could use to smuggle in code."""
    if isinstance(value, (tuple, list)):
        items = tuple(value_node(item) for item in value)
        if isinstance(value, list):
            return Group(f"{prefix}[", items, "]")
        return Group(f"{prefix}(", items, ")", one_tuple=len(items) == 1)
    return prefix + _atom(value)


def _atom(value: Any) -> str:
    if value is None or type(value) in (bool, int):
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
