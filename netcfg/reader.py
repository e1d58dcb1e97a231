"""Text → raw sections: the lark grammar, with line and column kept on every section and key."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import NamedTuple

import lark
from lark import Lark, Token, Transformer, UnexpectedInput

from .errors import CappedWarnings, CfgError, CfgItem
from .resources import resource_dir

#: Larger cfgs are refused before parsing: the largest real darknet cfg is about 40 KB.
MAX_CFG_BYTES = 16 * 2**20


class RawOption(NamedTuple):
    """One `key=value` as written (blanks removed) and where: a named tuple, as a cfg has one per line and
    a frozen dataclass took as long to create as the lexer took to read the line."""

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
    """Keeps a parse a flat list of header and OPTION tokens: no callback per line."""

    def lines(self, children: list[Token]) -> list[Token]:
        return children

    def start(self, children: list[Token]) -> list[Token]:
        return children


#: lark's own serialisation (`Lark.save`) of the compiled parser, shipped beside the grammar.
SERIALISED = "darknet.lark.parser"


@cache
def _parser() -> Lark:
    """The grammar's parser: loaded from its serialisation when that is of this grammar and lark
    version (compiling lark's meta-grammar and the LALR tables is ~30 ms of a fresh process), else
    compiled."""
    folder = resource_dir("grammars")
    grammar = (folder / "darknet.lark").read_text()
    return _load_serialised(folder / SERIALISED, _stamp(grammar)) or _compile(grammar)


def _compile(grammar: str) -> Lark:
    return Lark(grammar, parser="lalr", start=["lines", "start"], transformer=_Entries(), propagate_positions=False)


def _stamp(grammar: str) -> bytes:
    """The first line of a serialisation: the grammar's hash and the lark version it was made by."""
    return f"{hashlib.sha256(grammar.encode()).hexdigest()} lark {lark.__version__}\n".encode()


def _load_serialised(path: Path, stamp: bytes) -> Lark | None:
    """The parser serialised at `path`, or None when it is missing, stale or does not load."""
    try:
        data = path.read_bytes()
        if not data.startswith(stamp):
            return None
        parser = Lark.__new__(Lark)  # Lark.load, with the transformer it does not pass on
        return parser._load(io.BytesIO(data[len(stamp) :]), transformer=_Entries())
    except Exception:  # noqa: BLE001  (any failure only means compiling the grammar instead)
        return None


def save_parser() -> Path:
    """Write the serialisation `_parser` loads (run after editing the grammar or upgrading lark)."""
    folder = resource_dir("grammars")
    grammar = (folder / "darknet.lark").read_text()
    out = io.BytesIO()
    _compile(grammar).save(out)
    path = folder / SERIALISED
    path.write_bytes(_stamp(grammar) + out.getvalue())
    return path


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
            _parser().parse(line, start="start")
        except UnexpectedInput as exc:
            hint = "expected `key=value`, a `[section]` header or a comment"
            shown = line.strip(" \t")
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            items.append(CfgItem(f"cannot parse {shown!r}: {hint}", file, number, exc.column))
            if len(items) >= MAX_SYNTAX_ITEMS:
                break
    return items


def _tokens(text: str, file: str) -> list[Token]:
    """The section and option tokens: by the fast `lines` rule, else by the full `start` rule (a header
    split by blanks, line breaks or comments after its `[`), else a CfgError listing the bad lines."""
    try:
        return _parser().parse(text, start="lines")
    except UnexpectedInput:
        pass
    try:
        return _parser().parse(text, start="start")
    except UnexpectedInput:
        raise CfgError(_syntax_items(text, file)) from None


def _header(tok: Token, file: str) -> RawSection:
    """A section from a token holding its whole header (`SECTION`, at its `[`) or the part after `[`
    (`HEADER_REST`)."""
    if tok.type == "SECTION":
        return RawSection("".join(tok[1 : tok.index("]", 1)].split()), tok.line, tok.column, file)
    return RawSection("".join(tok[: tok.index("]")].split()), tok.line, tok.column - 1, file)


def _options(tok: Token) -> Iterator[tuple[str, str, int, int]]:
    """The `(key, value, line, column)` of each option line a token holds, as written: the one line of
    an `OPTION`, or the lines under a `SECTION`'s header (the grammar has checked them; blank and
    comment lines are skipped, and a value ends at its comment)."""
    if tok.type == "OPTION":
        key, _, value = tok.partition("=")
        yield key, value, tok.line, tok.column
        return
    if tok.type != "SECTION":
        return
    line = tok.line
    for text in tok.split("\n")[1:]:
        line += 1
        stripped = text.lstrip(" \t\f\v")
        if stripped and stripped[0] not in "#;":
            key, _, value = stripped.partition("=")
            if "#" in value or ";" in value:
                value = _COMMENT_START.split(value, 1)[0]
            yield key, value, line, len(text) - len(stripped) + 1


#: Where a comment starts in a value.
_COMMENT_START = re.compile("[#;]")


def read_sections(data: bytes | str, file: str = "<cfg>") -> list[RawSection]:
    """Parse cfg text into raw sections. Options before any header are an error."""
    return _sections(_tokens(decode(data, file), file), file)


def _sections(tokens: list[Token], file: str) -> list[RawSection]:
    """Header and option tokens → raw sections; a repeated key warns and keeps its first value."""
    sections: list[RawSection] = []
    items: list[CfgItem] = []
    section: RawSection | None = None
    repeats = CappedWarnings(file, "repeated keys are not shown; their first values are used")
    for tok in tokens:
        if tok.type != "OPTION":
            section = _header(tok, file)
            sections.append(section)
        for key, value, line, column in _options(tok):
            key = "".join(key.split())
            if section is None:
                items.append(CfgItem("option before any [section] header", file, line, column, key=key))
                continue
            first = section.options.get(key)
            if first is not None:
                message = (
                    f"{file}:{line}: [{section.name}] key {key!r} repeats line {first.line}; "
                    f"the first value ({first.value!r}) is used, as in darknet"
                )
                repeats.warn(message, stacklevel=4)
                continue
            section.options[key] = RawOption(key, "".join(value.split()), line, column)
    repeats.close(stacklevel=4)
    if items:
        raise CfgError(items)
    return sections
