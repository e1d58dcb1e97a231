"""Text → raw sections: the lark grammar, with line and column kept on every section and key."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cache

from lark import Lark, Token, Transformer, UnexpectedInput

from .errors import CfgError, CfgItem, CfgWarning
from .resources import resource_dir

#: Larger cfgs are refused before parsing: the largest real darknet cfg is about 40 KB.
MAX_CFG_BYTES = 16 * 2**20


@dataclass(frozen=True)
class RawOption:
    key: str
    value: str
    line: int
    column: int


@dataclass
class RawSection:
    """A `[name]` header and its options; `options` holds the first occurrence of each key."""

    name: str
    line: int
    column: int
    file: str
    options: dict[str, RawOption] = field(default_factory=dict)

    def where(self, key: str | None = None) -> tuple[int, int]:
        """Line and column of a key, or of the header when the key is absent."""
        opt = self.options.get(key) if key else None
        return (opt.line, opt.column) if opt else (self.line, self.column)


class _Entries(Transformer):
    """Keeps the parse a flat list of HEADER_REST and OPTION tokens: no callback per line."""

    def start(self, children: list[Token]) -> list[Token]:
        return children


@cache
def _parser() -> Lark:
    grammar = (resource_dir("grammars") / "darknet.lark").read_text()
    return Lark(grammar, parser="lalr", transformer=_Entries(), propagate_positions=False)


def decode(data: bytes | str, file: str) -> str:
    """Cfg bytes → text; a BOM is dropped and binary junk is refused with a CfgError."""
    if isinstance(data, str):
        text = data
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise CfgError([CfgItem("not UTF-8 text (binary file?)", file, line, 1)]) from None
    if len(text) > MAX_CFG_BYTES:
        raise CfgError([CfgItem(f"{len(text)} characters is too large for a cfg", file, 1, 1)])
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise CfgError([CfgItem("NUL byte in cfg text (binary file?)", file, line, 1)])
    return text


#: Syntax errors past this many are not looked for: each costs a parse of its line.
MAX_SYNTAX_ITEMS = 1000


def lines(text: str) -> list[str]:
    """The cfg's lines as darknet reads them: split at `\n` only (`decode` made `\r\n` a `\n`)."""
    return text.split("\n")


def _syntax_items(text: str, file: str) -> list[CfgItem]:
    """The lines the grammar rejects (up to MAX_SYNTAX_ITEMS), one item per line, found by re-parsing
    line by line."""
    items = []
    for number, line in enumerate(lines(text), start=1):
        try:
            _parser().parse(line)
        except UnexpectedInput as exc:
            hint = "expected `key=value`, a `[section]` header or a comment"
            shown = line.strip(" \t")
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            items.append(CfgItem(f"cannot parse {shown!r}: {hint}", file, number, exc.column))
            if len(items) >= MAX_SYNTAX_ITEMS:
                break
    return items


def read_sections(data: bytes | str, file: str = "<cfg>") -> list[RawSection]:
    """Parse cfg text into raw sections. Options before any header are an error."""
    text = decode(data, file)
    try:
        tokens = _parser().parse(text)
    except UnexpectedInput:
        raise CfgError(_syntax_items(text, file)) from None
    sections: list[RawSection] = []
    items: list[CfgItem] = []
    for tok in tokens:
        if tok.type == "HEADER_REST":
            sections.append(RawSection("".join(tok[: tok.index("]")].split()), tok.line, tok.column - 1, file))
            continue
        key, _, value = tok.partition("=")
        key, value = "".join(key.split()), "".join(value.split())
        if not sections:
            items.append(CfgItem("option before any [section] header", file, tok.line, tok.column, key=key))
            continue
        section = sections[-1]
        first = section.options.get(key)
        if first is not None:
            warnings.warn(
                f"{file}:{tok.line}: [{section.name}] key {key!r} repeats line {first.line}; "
                f"the first value ({first.value!r}) is used, as in darknet",
                CfgWarning,
                stacklevel=2,
            )
            continue
        section.options[key] = RawOption(key, value, tok.line, tok.column)
    if items:
        raise CfgError(items)
    return sections
