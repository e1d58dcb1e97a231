"""Images in, network inputs out: loading (paths, PIL images, uint8 arrays, tensors) and darknet's
preprocessing (resize_image, letterbox_image, resize_min + crop_image) on (C, H, W) float tensors."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import NetcfgError

#: What `load_image` takes: a path, a PIL image, an (H, W[, C]) uint8 array or a (C, H, W) float tensor.
ImageInput = Any


class ImageError(NetcfgError, ValueError):
    """An image that cannot be read or does not fit the network (missing, unreadable, wrong shape)."""


def pillow():
    """The PIL.Image module, or an ImageError saying how to install it."""
    try:
        from PIL import Image, ImageOps
    except ImportError as exc:
        raise ImageError("reading images needs Pillow and numpy: pip install 'netcfg[image]'") from exc
    return Image, ImageOps


def as_list(images: ImageInput | Sequence[ImageInput]) -> list[ImageInput]:
    """One image or a sequence of them → a list; a (B, C, H, W) tensor is B images."""
    if isinstance(images, torch.Tensor):
        return list(images) if images.dim() == 4 else [images]
    if isinstance(images, (list, tuple)):
        return list(images)
    return [images]


def load_image(image: ImageInput, channels: int = 3) -> torch.Tensor:
    """Any accepted image → a (channels, H, W) float32 tensor in [0, 1]: RGB for 3 channels, luminance for 1."""
    if channels not in (1, 3):
        raise ImageError(f"the network takes {channels}-channel images; netcfg reads 1- or 3-channel images")
    if isinstance(image, torch.Tensor):
        return _from_tensor(image, channels)
    if isinstance(image, (str, os.PathLike)):
        image = open_image(Path(image))
    Image, _ = pillow()
    if isinstance(image, Image.Image):
        import numpy as np

        return _from_array(np.asarray(image.convert("L" if channels == 1 else "RGB")), channels)
    if hasattr(image, "__array_interface__") or hasattr(image, "__array__"):
        import numpy as np

        return _from_array(np.asarray(image), channels)
    raise ImageError(f"cannot read an image from a {type(image).__name__}: give a path, PIL image, array or tensor")


def open_image(path: Path):
    """The image at `path`, decoded and turned upright per its EXIF orientation (as OpenCV's imread)."""
    Image, ImageOps = pillow()
    if not path.is_file():
        raise ImageError(f"{path}: no such image file")
    try:
        with Image.open(path) as opened:
            opened.load()
            return ImageOps.exif_transpose(opened)
    except (OSError, Image.DecompressionBombError, ValueError) as exc:
        raise ImageError(f"{path}: not an image Pillow can read ({exc})") from None


def _from_array(array, channels: int) -> torch.Tensor:
    """An (H, W) or (H, W, C) uint8 array (RGB or RGBA) → (channels, H, W) floats in [0, 1]."""
    if array.dtype.name != "uint8" or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ImageError(
            f"an image array must be (H, W) or (H, W, 1|3|4) uint8, not {tuple(array.shape)} {array.dtype.name}"
        )
    pixels = torch.from_numpy(array.copy()).float().div_(255)
    pixels = pixels[:, :, None] if pixels.dim() == 2 else pixels[:, :, :3]
    return _to_channels(pixels.permute(2, 0, 1), channels)


def _from_tensor(tensor: torch.Tensor, channels: int) -> torch.Tensor:
    """A (C, H, W) float tensor in [0, 1] → float32 on the CPU with `channels` channels."""
    if tensor.dim() != 3 or not tensor.is_floating_point() or tensor.shape[0] not in (1, 3):
        raise ImageError(f"an image tensor must be (C, H, W) floats in [0, 1] with C 1 or 3, not {tuple(tensor.shape)}")
    return _to_channels(tensor.detach().to("cpu", torch.float32), channels)


def _to_channels(pixels: torch.Tensor, channels: int) -> torch.Tensor:
    """(1 or 3, H, W) → (channels, H, W): grey repeated to RGB, RGB to luminance (ITU-R 601, as Pillow's "L")."""
    if pixels.shape[0] == channels:
        return pixels
    if channels == 3:
        return pixels.expand(3, -1, -1).contiguous()
    weights = torch.tensor([0.299, 0.587, 0.114]).reshape(3, 1, 1)
    return (pixels * weights).sum(0, keepdim=True)


def resize_image(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """darknet's resize_image: separable bilinear sampling at c·(W−1)/(w−1), i.e. corners aligned, no antialiasing."""
    if image.shape[-1] == width and image.shape[-2] == height:
        return image
    return F.interpolate(image[None], size=(height, width), mode="bilinear", align_corners=True)[0]


def letterbox_size(width: int, height: int, net_w: int, net_h: int) -> tuple[int, int]:
    """darknet's letterbox (and correct_yolo_boxes) size: the image scaled to fit the input, integer division."""
    if net_w / width < net_h / height:
        return net_w, (height * net_w) // width
    return (width * net_h) // height, net_h


def letterbox_image(image: torch.Tensor, net_w: int, net_h: int) -> torch.Tensor:
    """darknet's letterbox_image: resized to fit with its aspect ratio, centred on a 0.5 grey canvas."""
    new_w, new_h = letterbox_size(image.shape[-1], image.shape[-2], net_w, net_h)
    canvas = torch.full((image.shape[0], net_h, net_w), 0.5)
    left, top = (net_w - new_w) // 2, (net_h - new_h) // 2
    canvas[:, top : top + new_h, left : left + new_w] = resize_image(image, new_w, new_h)
    return canvas


def classifier_image(image: torch.Tensor, net_w: int, net_h: int) -> torch.Tensor:
    """darknet's predict_classifier input: resize_min to the input width, then the centre net_w × net_h crop
    (edge pixels repeated where the resized image is smaller, as crop_image clamps)."""
    width, height = image.shape[-1], image.shape[-2]
    if width < height:
        new_w, new_h = net_w, (height * net_w) // width
    else:
        new_w, new_h = (width * net_w) // height, net_w
    resized = resize_image(image, new_w, new_h)
    cols = (torch.arange(net_w) + int((new_w - net_w) / 2)).clamp(0, new_w - 1)  # C division truncates
    rows = (torch.arange(net_h) + int((new_h - net_h) / 2)).clamp(0, new_h - 1)
    return resized[:, rows][:, :, cols]
