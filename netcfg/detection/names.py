"""Class names: darknet `.names` files (one name a line), the bundled COCO and VOC lists, or "class N"."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import NetcfgError

_DATA = Path(__file__).resolve().parent.parent / "data"

#: `names=` values that pick a list shipped with netcfg.
BUNDLED_NAMES = {"coco": _DATA / "coco.names", "voc": _DATA / "voc.names"}

#: darknet's draw_detections skips classes whose name starts with this.
DONT_SHOW = "dont_show"

Names = str | os.PathLike | Sequence[str] | None


def read_names(path: str | os.PathLike) -> list[str]:
    """A darknet `.names` file's names, as get_labels_custom reads it: one a line, trailing space and CR dropped."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise NetcfgError(f"{path}: cannot read the names file: {exc.strerror or exc}") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return [line.rstrip() for line in lines]


def class_names(names: Names, classes: int) -> list[str]:
    """`classes` names from a `.names` path, "coco"/"voc", a list, or None ("class N"). Fewer names than
    classes leave the rest "class N" (darknet warns and reads past its list); extra names are unused."""
    if names is None:
        given: list[str] = []
    elif isinstance(names, (str, os.PathLike)):
        given = read_names(BUNDLED_NAMES.get(str(names), names))
    else:
        given = [str(name) for name in names]
    return [given[i] if i < len(given) else f"class {i}" for i in range(classes)]
