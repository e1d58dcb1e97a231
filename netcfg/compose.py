"""Composable cfgs: `[include]`, `name=` labels and `repeat=`, expanded on raw sections before validation.

- `repeat=N` on any section stands for N real layers (darknet indices count every copy); copies after
  the first get `stride=1` (and lose `stride_x`/`stride_y`) when the section type has a `stride` key.
  A label on a repeated section names its last copy.
- A relative reference landing just before a file's first layer reads the file's input: the layer
  before the include, or the network input (`-1` on the first layer, `from=-5` on a block's fifth).
- `name=label` names a layer; every layer reference (`layers=`, `from=`, ...) accepts a label.
  Labels are letters, digits, `_` and `-`, not starting with a digit, and unique within their file.
- `[include]` with `file=` (and optional `name=`, `repeat=`) inlines another cfg's layers in place;
  its `[net]` is ignored and its first layer reads the layer before the include. The path is relative
  to the including file, else a bundled cfg name; only `.cfg` files inside the include roots are read
  (see `files`). An included file keeps its own scope: its absolute
  indices count from its own first layer, its references cannot leave it (except to its input, as
  above), and its labels are reached from outside as `<include name>.<label>` (the include's `name=`,
  else the file's stem), nested includes as `outer.inner.label`. The include's name alone names its
  last layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CfgError, Diagnostics, did_you_mean
from .files import CfgText, IncludeRoots
from .reader import RawOption, RawSection, read_sections
from .registry import lookup
from .section import SpecError

INCLUDE = "include"
INCLUDE_KEYS = frozenset({"file", "name", "repeat"})
#: The keys `expand` reads off every section (the label and the copy count).
META_KEYS = frozenset({"name", "repeat"})
NET_NAMES = ("net", "network")
NETWORK_INPUT = -1
#: More layers than this after `repeat=` and `[include]` are refused; darknet's largest cfgs have ~1,000.
MAX_LAYERS = 100_000
LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


@dataclass
class Scope:
    """One cfg file as inlined in the network: where its layers start and its labels."""

    file: str
    offset: int
    included: bool = False
    labels: dict[str, int] = field(default_factory=dict)
    defined_at: dict[str, int] = field(default_factory=dict)

    @property
    def input(self) -> int:
        """What a relative reference landing just before the file's first layer (`-1` on that layer)
        reads: the layer before the file, or the network input."""
        return self.offset - 1 if self.offset > 0 else NETWORK_INPUT

    def resolve(self, value: int | str, index: int) -> int:
        """A reference written in this file, read by global layer `index` → global layer index."""
        if isinstance(value, str):
            return self._resolve_label(value, index)
        local = index - self.offset
        target = local + value if value < 0 else value
        if value < 0 and target == -1:
            return self.input
        if not 0 <= target < local:
            where = " of this included file" if self.included else ""
            raise SpecError(f"layer reference {value} resolves to {target}, outside layers 0..{local - 1}{where}")
        return self.offset + target

    def _resolve_label(self, label: str, index: int) -> int:
        target = self.labels.get(label)
        if target is None:
            raise SpecError(f"unknown layer label {label!r}{did_you_mean(label, set(self.labels))}")
        if target >= index:
            raise SpecError(f"label {label!r} names layer {target}, which does not come before this layer")
        return target


@dataclass(frozen=True)
class Placed:
    """One expanded layer: its raw section (meta keys removed) and the file scope it was written in."""

    raw: RawSection
    scope: Scope


def expand(
    raws: list[RawSection], file: str, errors: Diagnostics, roots: IncludeRoots, real: Path | None = None
) -> tuple[list[Placed], Scope]:
    """Layer sections (after `[net]`) → expanded layers and the top-level scope. `real` is the file
    behind `file` (None for cfg text); includes read only inside `roots`."""
    top = Scope(file, 0)
    placed: list[Placed] = []
    _Expansion(roots, errors, placed).into(raws, top, [(file, real)])
    return placed, top


@dataclass
class _Expansion:
    """One expansion pass: where includes may read, where problems go, and the layers placed so far."""

    roots: IncludeRoots
    errors: Diagnostics
    out: list[Placed]
    full: bool = False
    #: Each included file's text and sections (or why it cannot be read), by (file=, including file):
    #: an include fan-out reads and parses a file once, however many times it is included.
    read: dict[tuple[str, str], tuple[CfgText, list[RawSection]] | SpecError | CfgError] = field(default_factory=dict)

    def into(self, raws: list[RawSection], scope: Scope, chain: list[tuple[str, Path | None]]) -> None:
        """Place `raws` (written in `scope`'s file; `chain` the files including it) after `out`."""
        for raw in raws:
            if self.full:
                return
            repeat = _repeat(raw, self.errors)
            label = _label(raw, self.errors)
            if raw.name == INCLUDE:
                self.include(raw, repeat, label, scope, chain)
                continue
            if not self._room_for(repeat, raw):
                return
            plain = without_keys(raw, META_KEYS) if not raw.options.keys().isdisjoint(META_KEYS) else raw
            self.out.append(Placed(plain, scope))
            if repeat > 1:
                copy = _stride_one(plain)
                self.out.extend(Placed(copy, scope) for _ in range(repeat - 1))
            if label is not None:
                _define(scope, label, len(self.out) - 1, raw, self.errors)

    def _room_for(self, count: int, raw: RawSection) -> bool:
        """Whether `count` more layers fit under MAX_LAYERS; records the error (once) when not."""
        if len(self.out) + count <= MAX_LAYERS:
            return True
        self.errors.add(raw, None, f"the network expands to more than {MAX_LAYERS:,d} layers here", "repeat")
        self.full = True
        return False

    def include(
        self, raw: RawSection, repeat: int, label: str | None, scope: Scope, chain: list[tuple[str, Path | None]]
    ) -> None:
        """Inline the included file `repeat` times; its labels become `<name>.<label>` in `scope`."""
        errors = self.errors
        for key in raw.options.keys() - INCLUDE_KEYS:
            errors.add(raw, None, f"unknown key{did_you_mean(key, INCLUDE_KEYS)}", key)
        if "file" not in raw.options:
            errors.add(raw, None, "required key is missing", "file")
            return
        try:
            found, sections = self._read(raw.options["file"].value, raw.file)
            if found.path is not None and found.path in [real for _, real in chain]:
                cycle = " → ".join([*(n for n, _ in chain), found.name])
                raise SpecError(f"include cycle: {cycle}", "file")
        except SpecError as exc:
            errors.add(raw, None, exc.message, exc.key)
            return
        except CfgError as exc:
            errors.items.extend(exc.items)
            return
        layers = sections[1:] if sections and sections[0].name in NET_NAMES else sections
        if not layers:
            errors.add(raw, None, f"{found.name} has no layers to include", "file")
            return
        qualifier = label if label is not None else Path(found.name).stem
        for _ in range(repeat):
            if not self._room_for(1, raw):
                return
            inner = Scope(found.name, len(self.out), included=True)
            self.into(layers, inner, [*chain, (found.name, found.path)])
        if _define(scope, qualifier, len(self.out) - 1, raw, errors):
            for inner_label, index in inner.labels.items():
                _define(scope, f"{qualifier}.{inner_label}", index, raw, errors)

    def _read(self, target: str, including: str) -> tuple[CfgText, list[RawSection]]:
        """The included file and its sections, read on its first include and remembered (errors too)."""
        key = (target, including)
        if key not in self.read:
            try:
                found = self.roots.locate(target, including)
                self.read[key] = (found, read_sections(found.content, found.name))
            except (SpecError, CfgError) as exc:
                self.read[key] = exc
        known = self.read[key]
        if isinstance(known, SpecError | CfgError):
            raise known.with_traceback(None)
        return known


def _define(scope: Scope, label: str, index: int, raw: RawSection, errors: Diagnostics) -> bool:
    """Record a label in its file's scope; False (after an error) when the file already uses it."""
    first = scope.defined_at.get(label)
    if first is not None:
        hint = "" if "name" in raw.options else "; give the [include] a name="
        errors.add(raw, index, f"duplicate label {label!r} (first defined at line {first}){hint}", "name")
        return False
    scope.labels[label] = index
    scope.defined_at[label] = raw.where("name")[0]
    return True


def _repeat(raw: RawSection, errors: Diagnostics) -> int:
    option = raw.options.get("repeat")
    if option is None:
        return 1
    try:
        value = int(option.value)
    except ValueError:
        value = 0
    if value < 1:
        errors.add(raw, None, f"repeat={option.value!r} must be an integer ≥ 1", "repeat")
        return 1
    return value


def _label(raw: RawSection, errors: Diagnostics) -> str | None:
    option = raw.options.get("name")
    if option is None:
        return None
    if not LABEL.fullmatch(option.value):
        errors.add(
            raw, None, f"label {option.value!r} must be letters, digits, '_' or '-', not starting with a digit", "name"
        )
        return None
    return option.value


def without_keys(raw: RawSection, keys: set[str]) -> RawSection:
    options = {k: o for k, o in raw.options.items() if k not in keys}
    return RawSection(raw.name, raw.line, raw.column, raw.file, options)


def _stride_one(raw: RawSection) -> RawSection:
    """A later copy of a repeated section: stride 1 when the section type has a `stride` key."""
    entry = lookup(raw.name)
    if entry is None or "stride" not in entry.model.model_fields:
        return raw
    copy = without_keys(raw, {"stride", "stride_x", "stride_y"})
    line, column = raw.where("stride")
    copy.options["stride"] = RawOption("stride", "1", line, column)
    return copy
