"""darknet's `.data` files, image lists and the detection dataset `netcfg train` reads.

A `.data` file is `key = value` lines (`classes`, `train`, `valid`, `names`, `backup`; `#` starts a
comment); paths are relative to the working directory, as darknet reads them. The train list names
one image per line; each image's boxes are in its label file (`targets.label_path`).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import NetcfgError
from .augment import distort
from .crop import WINDOW_DRAWS, crop_and_stretch, crop_window, move_boxes
from .targets import label_path, read_labels


@dataclass(frozen=True)
class DataFile:
    """What a darknet `.data` file says: class count, image lists, class names and the backup folder."""

    classes: int
    train: Path
    valid: Path | None = None
    names: Path | None = None
    backup: Path = Path("backup")


def read_data_file(path: str | os.PathLike) -> DataFile:
    """Parse a darknet `.data` file; NetcfgError naming the line when it is malformed or lacks `train`."""
    values: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        key, sep, value = text.partition("=")
        if not sep:
            raise NetcfgError(f"{path}:{number}: expected `key = value`, got {line!r}")
        values[key.strip()] = value.strip()
    if "train" not in values:
        raise NetcfgError(f"{path}: no `train = <image list>` line")
    try:
        classes = int(values.get("classes", "20"))
    except ValueError:
        raise NetcfgError(f"{path}: classes = {values['classes']!r} is not a whole number") from None
    optional = {k: Path(values[k]) for k in ("valid", "names") if k in values}
    return DataFile(classes, Path(values["train"]), backup=Path(values.get("backup", "backup")), **optional)


def image_list(path: str | os.PathLike) -> list[str]:
    """The image paths of a darknet list file, one a line."""
    paths = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    if not paths:
        raise NetcfgError(f"{path}: the image list is empty")
    return paths


def load_image(path: str, channels: int) -> torch.Tensor:
    """An image file as a (channels, H, W) float tensor in [0, 1] (Pillow, imported when needed)."""
    import numpy as np
    from PIL import Image

    try:
        with Image.open(path) as image:
            converted = image.convert("L" if channels == 1 else "RGB")
    except (OSError, ValueError) as exc:
        raise NetcfgError(f"{path}: cannot read the image: {exc}") from None
    array = torch.from_numpy(np.asarray(converted, dtype=np.float32).copy()) / 255
    return array[None] if array.dim() == 2 else array.permute(2, 0, 1)


@dataclass(frozen=True)
class Augment:
    """The augmentation the dataset applies: `[net]`'s flip, hue, saturation, exposure and mixup, and
    the last head's jitter and resize (darknet reads those from its last layer)."""

    flip: bool = False
    hue: float = 0.0
    saturation: float = 1.0
    exposure: float = 1.0
    jitter: float = 0.0
    resize: float = 1.0
    mixup: bool = False

    @classmethod
    def from_cfg(cls, net, head) -> Augment:
        """The keys of `[net]` and of the last head (`jitter` 0 and `resize` 1 where it has none)."""
        jitter, resize = getattr(head, "jitter", 0.0), getattr(head, "resize", 1.0)
        return cls(net.flip, net.hue, net.saturation, net.exposure, jitter, resize, net.mixup != 0)


#: `[net]` keys of darknet's detector training (detector.c's load_args) that the dataset does not apply.
UNAPPLIED_NET_KEYS = ("mosaic", "cutmix", "blur", "gaussian_noise", "adversarial_lr")


def unapplied_augmentation(net) -> list[str]:
    """The `[net]` keys of `UNAPPLIED_NET_KEYS` the cfg sets to anything but 0, as `key=value`:
    darknet's training augmentation that `netcfg train` leaves out."""
    given = {key: str(net.extras[key]).strip() for key in UNAPPLIED_NET_KEYS if key in net.extras}
    return [f"{key}={value}" for key, value in given.items() if _nonzero(value)]


def _nonzero(value: str) -> bool:
    """A cfg value other than 0 (text that is not a number counts as set)."""
    try:
        return float(value) != 0
    except ValueError:
        return True


class DetectionDataset(torch.utils.data.Dataset):
    """Images and their darknet labels, augmented and fitted to the network input: (image, rows)."""

    def __init__(
        self,
        paths: list[str],
        size: tuple[int, int, int],
        augment: Augment = Augment(),
        letterbox: bool = False,
        max_boxes: int = 200,
        seed: int = 0,
    ):
        self.paths, self.size, self.augment = paths, size, augment
        self.letterbox, self.max_boxes, self.seed = letterbox, max_boxes, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: int | tuple[int, tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """load_data_detection for one image (`key`: an index, or an index and the (H, W) to fit to
        instead of the network's own, for multi-scale training). With `mixup`, half the time it is
        blended half and half with another image, augmented on its own, whose boxes come first
        (blend_images, blend_truth)."""
        index, size = key if isinstance(key, tuple) else (key, self.size[1:])
        rng = random.Random(hash((self.seed, self.epoch, index)))
        image, boxes = self._load(index, size, rng)
        if self.augment.mixup and rng.random() < 0.5:
            other = rng.randrange(len(self.paths))
            second, more = self._load(other, size, random.Random(hash((self.seed, self.epoch, index, other))))
            image, boxes = second * 0.5 + image * 0.5, torch.cat((more, boxes))[: self.max_boxes]
        return image, boxes

    def _load(self, index: int, size: tuple[int, int], rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
        """One image's jitter window stretched to `size`, flipped, distorted, its boxes moved with it."""
        (net_h, net_w), a = size, self.augment
        path = self.paths[index]
        image = load_image(path, self.size[0])
        _, image_h, image_w = image.shape
        draws = [rng.random() for _ in range(WINDOW_DRAWS)]
        window = crop_window(image_w, image_h, net_w, net_h, a.jitter, a.resize, self.letterbox, draws)
        flipped = a.flip and rng.random() < 0.5
        image = crop_and_stretch(image, window, net_w, net_h)
        image = distort(image.flip(-1) if flipped else image, a.hue, a.saturation, a.exposure, rng)
        boxes = read_labels(label_path(path))
        return image, move_boxes(boxes, window, image_w, image_h, flipped, net_w, net_h, self.max_boxes, rng)
