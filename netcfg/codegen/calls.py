"""Layers as Python: the constructor call `build` makes, and the plain expressions that stand in
for parameter-free `[route]`s and `[shortcut]`s in `forward`."""

from __future__ import annotations

import inspect
import keyword
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..modules.darknet import Route, Shortcut
from ..section import LayerCall
from ..spec import LayerSpec
from .layout import Group, Node
from .literals import IDENTIFIER, literal, value_node


@dataclass(frozen=True)
class Layer:
    """A validated layer, the module call that builds it and its label, if any."""

    spec: LayerSpec
    call: LayerCall
    label: str | None = None

    @property
    def index(self) -> int:
        return self.spec.index


def call_node(call: LayerCall, cls_name: str) -> Group:
    """`Cls(key=value, ...)`, leaving out arguments equal to the constructor's defaults."""
    defaults = _defaults(call.cls)
    items: list[Node] = []
    for key, value in call.kwargs.items():
        if not IDENTIFIER.match(key) or keyword.iskeyword(key):
            raise ValueError(f"{call.cls.__name__}: keyword {key!r} cannot be written as an argument")
        try:
            node = value_node(value, f"{key}=")
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{call.cls.__name__}({key}=...): {exc}") from None
        if key not in defaults or not _same(value, defaults[key]):
            items.append(node)
    return Group(f"{cls_name}(", tuple(items), ")")


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


def inline_expression(call: LayerCall, args: list[str]) -> Node | None:
    """The layer applied to `args` as a plain expression, or None when it needs its module."""
    rule = _INLINE.get(call.cls)
    return rule(call.kwargs, args) if rule else None


def _inline_route(kwargs: dict[str, Any], args: list[str]) -> Node | None:
    """A route is its input or a concatenation along channels; with channel groups, of each input's
    group `group_id`, as `Route` takes it (so TorchScript never meets `Route`'s variadic forward)."""
    groups, group_id = kwargs.get("groups", 1), kwargs.get("group_id", 0)
    if groups != 1:
        args = [f"{arg}.chunk({literal(groups)}, dim=1)[{literal(group_id)}]" for arg in args]
    return args[0] if len(args) == 1 else Group("torch.cat(", (Group("[", tuple(args), "]"), "dim=1"), ")")


def _inline_shortcut(kwargs: dict[str, Any], args: list[str]) -> Node | None:
    """An unweighted, linear shortcut of equal channel counts is a plain sum."""
    plain = kwargs.get("weights_type", "none") == "none" and kwargs.get("activation_name", "linear") == "linear"
    return " + ".join(args) if plain and len(set(kwargs.get("channels", ()))) == 1 else None


#: Module classes whose plain configurations `forward` writes as expressions instead of calls.
_INLINE: dict[type[nn.Module], Callable[[dict[str, Any], list[str]], Node | None]] = {
    Route: _inline_route,
    Shortcut: _inline_shortcut,
}
