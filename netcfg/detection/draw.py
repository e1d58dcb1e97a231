"""Boxes and labels drawn on an image with Pillow, in darknet's per-class colours."""

from __future__ import annotations

import math
from pathlib import Path

from .core import Detection
from .images import pillow

#: darknet's image.c colour ramp: magenta, blue, cyan, green, yellow, red.
_RAMP = ((1, 0, 1), (0, 0, 1), (0, 1, 1), (0, 1, 0), (1, 1, 0), (1, 0, 0))


def class_colour(class_id: int, classes: int) -> tuple[int, int, int]:
    """darknet's draw_detections colour for a class: get_color at offset class·123457 mod classes."""
    offset = class_id * 123457 % max(classes, 1)
    ratio = offset / max(classes, 1) * 5
    low, high = math.floor(ratio), math.ceil(ratio)
    ratio -= low
    return tuple(round(255 * ((1 - ratio) * _RAMP[low][c] + ratio * _RAMP[high][c])) for c in (2, 1, 0))


def draw(source: str | Path, detections: list[Detection], classes: int, target: Path) -> Path:
    """Save `source` (read upright, as detection read it) to `target` with each detection's box and
    "name score%" label drawn on it."""
    from .images import open_image

    Image, _ = pillow()
    from PIL import ImageDraw, ImageFont

    picture = open_image(Path(source)).convert("RGB")
    pen = ImageDraw.Draw(picture)
    font = ImageFont.load_default()
    width = max(1, round(min(picture.size) / 200))
    for det in sorted(detections, key=lambda d: d.score):
        colour = class_colour(det.class_id, classes)
        pen.rectangle(det.box, outline=colour, width=width)
        label = f"{det.class_name} {det.score:.0%}"
        left, top, right, bottom = pen.textbbox((det.box[0], det.box[1]), label, font=font)
        shift = min(det.box[1], bottom - top + 2)
        pen.rectangle((left, top - shift, right + 2, bottom - shift + 2), fill=colour)
        pen.text((det.box[0] + 1, det.box[1] - shift + 1), label, fill=(0, 0, 0), font=font)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        picture.save(target)
    except (KeyError, ValueError):  # a suffix Pillow cannot write: PNG instead
        target = target.with_suffix(".png")
        picture.save(target)
    return target
