"""Darknet's label files and batched targets: per image, rows `class x y w h` in image fractions.

A label file sits where darknet's replace_image_to_label puts it: the image path with `/JPEGImages/`
(or COCO's `/images/train2017/`, `/images/val2014/`, ...) replaced by `/labels/` and the image
extension by `.txt`; otherwise beside the image. An image without a label file has no boxes, as in
darknet. `collate` pads the rows of a batch into one (B, T, 5) tensor for `DarknetLoss`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from ..errors import NetcfgError

_FOLDERS = [
    (sep + old.replace("/", sep) + sep, sep + new.replace("/", sep) + sep)
    for old, new in [
        ("images/train2017", "labels/train2017"),
        ("images/val2017", "labels/val2017"),
        ("images/train2014", "labels/train2014"),
        ("images/val2014", "labels/val2014"),
        ("JPEGImages", "labels"),
    ]
    for sep in ("/", "\\")
]
_EXTENSIONS = (".jpg", ".JPG", ".jpeg", ".JPEG", ".png", ".PNG", ".bmp", ".BMP", ".ppm", ".PPM", ".tiff", ".TIFF")


def label_path(image: str | os.PathLike) -> Path:
    """Where darknet looks for an image's labels (replace_image_to_label)."""
    path = str(image).strip()
    for old, new in _FOLDERS:
        path = path.replace(old, new)
    for ext in _EXTENSIONS:
        if path.endswith(ext):
            return Path(path[: -len(ext)] + ".txt")
    return Path(path)


def read_labels(path: str | os.PathLike) -> torch.Tensor:
    """(N, 5) rows `class x y w h` of a darknet label file; none when it does not exist."""
    path = Path(path)
    if not path.is_file():
        return torch.zeros(0, 5)
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            values = [float(v) for v in fields[:5]]
        except ValueError:
            values = []
        if len(values) != 5 or values[0] != int(values[0]) or values[0] < 0:
            raise NetcfgError(f"{path}:{number}: a label line is `class x y w h` (class a whole number): {line!r}")
        rows.append(values)
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 5)


def collate(batch: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(image, rows) pairs → images (B, C, H, W) and targets (B, T, 5), padded with rows of 0 and class −1
    (darknet's truth list ends at the first row with x = 0)."""
    images = torch.stack([image for image, _ in batch])
    most = max((len(rows) for _, rows in batch), default=0)
    targets = torch.zeros(len(batch), most, 5)
    targets[..., 0] = -1
    for b, (_, rows) in enumerate(batch):
        targets[b, : len(rows)] = rows
    return images, targets
