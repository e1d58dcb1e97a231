"""Value types for section fields: how cfg strings become numbers, lists and layer references."""

from __future__ import annotations

from typing import Annotated, Literal, NamedTuple

from pydantic import BeforeValidator, Strict

Shape = tuple[int, int, int]
"""A layer output as (channels, height, width), batch excluded."""


def shape_text(shape: Shape) -> str:
    """`C×H×W (C×H×W)`, as messages show a shape."""
    return f"{shape[0]}×{shape[1]}×{shape[2]} (C×H×W)"


def _split(value: object) -> object:
    """`"1, 2,3"` → `["1", "2", "3"]`; empty items are dropped as darknet's atoi loop skips them."""
    if isinstance(value, str):
        return [item for item in value.replace(" ", "").split(",") if item]
    if isinstance(value, (int, float)):
        return [value]
    return value


def _ref(item: object) -> object:
    """A layer reference: an int (relative when negative, absolute otherwise) or a label."""
    if isinstance(item, str):
        try:
            return int(item)
        except ValueError:
            return item
    return item


def _refs(value: object) -> object:
    items = _split(value)
    return [_ref(item) for item in items] if isinstance(items, list) else items


def _flag(value: object) -> object:
    """Darknet booleans are ints: `0` is false, any other int true; words such as `yes` are refused."""
    if isinstance(value, str):
        try:
            return int(value) != 0
        except ValueError:
            return value
    return value


IntList = Annotated[tuple[int, ...], BeforeValidator(_split)]
FloatList = Annotated[tuple[float, ...], BeforeValidator(_split)]
Refs = Annotated[tuple[int | str, ...], BeforeValidator(_refs)]
Flag = Annotated[bool, Strict(), BeforeValidator(_flag)]

Activation = Literal[
    "linear",
    "logistic",
    "loggy",
    "relu",
    "elu",
    "selu",
    "gelu",
    "relie",
    "ramp",
    "leaky",
    "revleaky",
    "tanh",
    "plse",
    "stair",
    "hardtan",
    "lhtan",
    "relu6",
    "swish",
    "mish",
    "hard_mish",
    "normalize_channels",
    "normalize_channels_softmax",
    "normalize_channels_softmax_maxval",
]


class Ref(NamedTuple):
    """One input of a layer: the key it was written under (None: the previous layer) and the value."""

    key: str | None
    value: int | str


PREVIOUS = Ref(None, -1)
