"""The Section contract: the base every section model extends, and the module call it returns.

A section type is a pydantic model (its cfg keys, defaults and ranges) with three methods: the
layers it reads (`inputs`), its shape rule (`infer`) and its module factory (`layer`). Registering
it with `@register("name", "alias")` (see `registry`) is all it takes to parse, validate, build,
summarise and convert it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, field_validator
from torch import nn

from .geometry import ConvGeometry
from .values import PREVIOUS, Ref, Shape

#: The largest magnitude of an integer key: darknet reads them with atoi into a C int.
MAX_INT = 2**31 - 1

#: The `[net]` header that every section's `example` follows.
EXAMPLE_NET = "[net]\nwidth=32\nheight=32\nchannels=8\n"

#: Keys darknet reads for every layer that only matter to training; accepted and kept.
TRAINING_KEYS = frozenset(
    {
        "clip",
        "onlyforward",
        "dont_update",
        "burnin_update",
        "stopbackward",
        "train_only_bn",
        "dontload",
        "dontloadscales",
        "learning_rate",
        "show_receptive_field",
    }
)


class SpecError(Exception):
    """Raised by a section's rules; the spec stage adds file, line, column and layer."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.message = message
        self.key = key


@dataclass(frozen=True)
class LayerCall:
    """A module class and the keyword arguments that construct it: what `build` instantiates
    and what code generation prints, so both always agree."""

    cls: type[nn.Module]
    kwargs: dict[str, Any] = field(default_factory=dict)

    def instantiate(self) -> nn.Module:
        return self.cls(**self.kwargs)


@dataclass(frozen=True)
class Context:
    """What a section may know beyond its own keys: its index, the `[net]` section, input sizes."""

    index: int
    net: Any
    shapes: list[Shape]


class Section(BaseModel):
    """Base of every section model. Field names (or aliases) are the cfg keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    #: Keys accepted and kept but without effect at inference (training and loss options).
    ignored_keys: ClassVar[frozenset[str]] = frozenset()
    #: Registered name, set by `register`.
    type_name: ClassVar[str] = ""
    #: Family for `netcfg list` and the reference (darknet, attention, context, conv, backbone, ...).
    family: ClassVar[str] = "user"
    #: A small cfg fragment using this section, placed after `EXAMPLE_NET`: documents it and lets the
    #: registry-wide tests build, run and convert every section type.
    example: ClassVar[str] = ""
    #: Whether this layer's output is a network output (`[yolo]`, `[region]`).
    is_output: ClassVar[bool] = False
    #: Whether this is a training loss (`[cost]`): passed through, never the default output.
    is_loss: ClassVar[bool] = False

    @field_validator("*", mode="after")
    @classmethod
    def _bounded(cls, value: Any) -> Any:
        """Every number a cfg gives is an int32 (as darknet's atoi reads it) or a finite float."""
        kind = type(value)
        if kind is str or kind is bool or (kind is int and -MAX_INT <= value <= MAX_INT):
            return value  # the common cases, without the loop: this runs on every key of every section
        for number in value if isinstance(value, tuple) else (value,):
            if isinstance(number, int) and abs(number) > MAX_INT:
                raise ValueError(f"{number} is out of range: at most {MAX_INT} in magnitude")
            if isinstance(number, float) and not math.isfinite(number):
                raise ValueError(f"{number} is not a finite number")
        return value

    @property
    def extras(self) -> Mapping[str, str]:
        """Accepted keys without effect at inference, as written (read-only)."""
        private = self.__pydantic_private__
        return MappingProxyType(private["extras"]) if private else MappingProxyType({})

    def keep_extras(self, extras: dict[str, str]) -> None:
        """Keep `extras` with this validated section, in pydantic's slot for private values (which
        copies, pickles and comparisons carry): a declared private attribute cost every section an
        initialisation hook, a tenth of validating a cfg."""
        object.__setattr__(self, "__pydantic_private__", {"extras": dict(extras)})

    @property
    def geometry(self) -> ConvGeometry | None:
        """The window the section slides (kernel, strides, pixel padding, dilation, groups), if any:
        shape inference, module arguments, BFLOPs and the summary all read this one value."""
        return None

    def notes(self) -> list[tuple[str | None, str]]:
        """Legal but suspicious values, as (key, message): reported as located CfgWarnings."""
        return []

    def shares(self) -> Ref | None:
        """The layer whose parameters this one uses instead of its own (darknet's `share_index`)."""
        return None

    def inputs(self) -> list[Ref]:
        """The layers this section reads, in order; the previous layer unless overridden."""
        return [PREVIOUS]

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        """Output shape from input shapes; raise SpecError for impossible combinations."""
        return shapes[0]

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        """The module that computes this section."""
        raise NotImplementedError(f"[{self.type_name}] has no module factory")

    def bflops(self, shapes: list[Shape], output: Shape) -> float | None:
        """Billions of floating-point operations for one image, when the generic count
        (2 × multiply-adds of every Conv2d and Linear inside the module) is not right."""
        return None


def section_keys(model: type[Section]) -> set[str]:
    """Every key a section type accepts: its fields by cfg name, plus the ignored ones."""
    return set(key_plan(model).accepted)


@dataclass(frozen=True)
class KeyPlan:
    """A section type's keys by role, computed once per type: validating every section re-derived them."""

    fields: frozenset[str]
    ignored: frozenset[str]
    accepted: frozenset[str]


@functools.cache
def key_plan(model: type[Section]) -> KeyPlan:
    """The cfg names of `model`'s fields, the keys it keeps without effect, and all it accepts."""
    fields = frozenset(f.alias or name for name, f in model.model_fields.items())
    ignored = frozenset(model.ignored_keys) | TRAINING_KEYS
    return KeyPlan(fields, ignored, fields | ignored)
