"""Bracketed expressions laid out as ruff format would: flat when they fit, else exploded."""

from __future__ import annotations

from dataclasses import dataclass

LINE_LENGTH = 120
INDENT = "    "


@dataclass(frozen=True)
class Group:
    """A bracketed, comma-separated expression that can be laid out flat or one item per line."""

    head: str
    items: tuple[Node, ...]
    close: str
    one_tuple: bool = False

    def flat(self) -> str:
        inner = ", ".join(flat(item) for item in self.items)
        return f"{self.head}{inner}{',' if self.one_tuple else ''}{self.close}"


Node = str | Group


def flat(node: Node) -> str:
    """The node on one line."""
    return node if isinstance(node, str) else node.flat()


def lines(node: Node, indent: int, prefix: str = "", trail: str = "") -> list[str]:
    """Lay out `prefix + node + trail` at `indent` as ruff format does: flat if it fits, else the
    items on one indented line if they fit (a call's arguments, not the items of a list, tuple or
    dict display, which ruff explodes), else one item per line with a trailing comma."""
    pad = INDENT * indent
    whole = f"{pad}{prefix}{flat(node)}{trail}"
    if len(whole) <= LINE_LENGTH or isinstance(node, str) or not node.items:
        return [whole]
    first, close = f"{pad}{prefix}{node.head}", f"{pad}{node.close}{trail}"
    body = f"{pad}{INDENT}{', '.join(flat(item) for item in node.items)}{',' if node.one_tuple else ''}"
    display = node.head in ("[", "(", "{") and (len(node.items) > 1 or node.one_tuple)
    if len(body) <= LINE_LENGTH and not display:
        return [first, body, close]
    return [first, *(line for item in node.items for line in lines(item, indent + 1, trail=",")), close]


def fits(rows: list[str]) -> bool:
    return all(len(row) <= LINE_LENGTH for row in rows)
