"""darknet's training crop (data.c load_data_detection in the build without OpenCV, whose image.c
the rest of the augmentation follows): a window of the image moved by the last head's `jitter`,
scaled by its `resize` and, with `letter_box`, widened to the network's aspect; its pixels past the
image repeat the image's edge (crop_image), it is stretched to the network input (resize_image), and
the boxes move with it (correct_boxes, fill_truth_detection).

The window's arithmetic is darknet's float32 and int truncation, so it is darknet's window for the
same random draws. Images are (C, H, W) float tensors; boxes (N, 5) rows `class x y w h` in image
fractions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

#: The uniform draws in [0, 1] one window takes: r1, r2, r3, r4 (jitter), then resize_r1, resize_r2.
WINDOW_DRAWS = 6

f32 = np.float32


@dataclass(frozen=True)
class Window:
    """A crop of an image in its pixels: left and top edges (outside the image when negative) and size."""

    left: int
    top: int
    width: int
    height: int


def crop_window(
    image_w: int, image_h: int, net_w: int, net_h: int, jitter: float, resize: float, letterbox: bool, draws
) -> Window:
    """load_data_detection's pleft, ptop, swidth, sheight for one image and its `draws`. darknet
    makes an empty or negative crop when a large `jitter` moves both edges past each other; here it
    keeps at least one pixel."""
    r1, r2, r3, r4, s1, s2 = (f32(d) for d in draws)
    jitter = f32(jitter)
    dw, dh = int(f32(image_w) * jitter), int(f32(image_h) * jitter)
    down, up = f32(resize), f32(resize)
    down = f32(1) / down if down > 1 else down
    up = f32(1) / up if up < 1 else up
    min_w, min_h = (int(f32(n) * (f32(1) - f32(1) / down) / f32(2)) for n in (image_w, image_h))
    max_w, max_h = (int(f32(n) * (f32(1) - f32(1) / up) / f32(2)) for n in (image_w, image_h))
    if f32(resize) < 1:
        max_w = max_h = 0  # downsizing only
    left = int(f32(int(_between(-dw, dw, r1))) + _between(min_w, max_w, s1))
    right = int(f32(int(_between(-dw, dw, r2))) + _between(min_w, max_w, s2))
    top = int(f32(int(_between(-dh, dh, r3))) + _between(min_h, max_h, s1))
    bottom = int(f32(int(_between(-dh, dh, r4))) + _between(min_h, max_h, s2))
    if letterbox:
        left, top, right, bottom = _widened(left, top, right, bottom, image_w, image_h, net_w / net_h)
    return Window(left, top, max(1, image_w - left - right), max(1, image_h - top - bottom))


def _widened(left: int, top: int, right: int, bottom: int, image_w: int, image_h: int, net_ar: float):
    """letter_box's edges: the window grown on both sides of its short axis to the network's aspect."""
    net_ar = f32(net_ar)
    if f32(image_w) / f32(image_h) / net_ar > 1:
        grow = (f32(image_w) / net_ar - f32(image_h)) / f32(2)
        return left, int(f32(top) - grow), right, int(f32(bottom) - grow)
    grow = (f32(image_h) * net_ar - f32(image_w)) / f32(2)
    return int(f32(left) - grow), top, int(f32(right) - grow), bottom


def _between(low: int, high: int, draw: np.float32) -> np.float32:
    """darknet's rand_precalc_random: `draw` of the way from the smaller bound to the larger."""
    low, high = f32(min(low, high)), f32(max(low, high))
    return draw * (high - low) + low


def crop_and_stretch(image: torch.Tensor, window: Window, net_w: int, net_h: int) -> torch.Tensor:
    """resize_image(crop_image(image, window), net_w, net_h): bilinear over the window with corners
    aligned, pixels past the image repeating its edge. The crop itself is never made (a large
    `resize` widens it without bound); the samples are taken from the image directly."""
    _, image_h, image_w = image.shape
    xs = _normalised(window.left + _samples(window.width, net_w), image_w)
    ys = _normalised(window.top + _samples(window.height, net_h), image_h)
    grid = torch.stack((xs[None, :].expand(net_h, net_w), ys[:, None].expand(net_h, net_w)), dim=-1)
    grid = grid.to(image.dtype)[None]
    return F.grid_sample(image[None], grid, mode="bilinear", padding_mode="border", align_corners=True)[0]


def _samples(span: int, count: int) -> torch.Tensor:
    """Where resize_image samples a row of `span` pixels stretched to `count`: k·(span−1)/(count−1)."""
    if count == 1:
        return torch.tensor([span - 1.0], dtype=torch.float64)
    return torch.arange(count, dtype=torch.float64) * ((span - 1) / (count - 1))


def _normalised(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """Pixel coordinates → grid_sample's [−1, 1] with corners aligned (any value for a 1-pixel side)."""
    return pixels * (2 / (size - 1)) - 1 if size > 1 else torch.zeros_like(pixels)


def move_boxes(
    boxes: torch.Tensor,
    window: Window,
    image_w: int,
    image_h: int,
    flipped: bool,
    net_w: int,
    net_h: int,
    max_boxes: int,
    rng: random.Random,
) -> torch.Tensor:
    """fill_truth_detection with correct_boxes: the boxes shuffled (randomize_boxes), the first
    `max_boxes` moved into the window's fractions (mirrored when `flipped`) and clipped to it; rows
    at x = y = 0, boxes wholly outside the image, and boxes under one network pixel are dropped."""
    boxes = boxes[torch.tensor(rng.sample(range(len(boxes)), len(boxes)), dtype=torch.long)] if len(boxes) else boxes
    sx = f32(window.width) / f32(image_w)
    sy = f32(window.height) / f32(image_h)
    dx = f32(window.left) / f32(image_w) / sx
    dy = f32(window.top) / f32(image_h) / sy
    scale_x, scale_y = float(f32(1.0 / float(sx))), float(f32(1.0 / float(sy)))
    cls, x, y, w, h = boxes.unbind(1)
    left, right, top, bottom = x - w / 2, x + w / 2, y - h / 2, y + h / 2
    kept = ~((x == 0) & (y == 0)) & (right >= 0) & (bottom >= 0) & (left <= 1) & (top <= 1)
    left, right = left * scale_x - float(dx), right * scale_x - float(dx)
    top, bottom = top * scale_y - float(dy), bottom * scale_y - float(dy)
    if flipped:
        left, right = 1 - right, 1 - left
    left, right, top, bottom = (edge.clamp(0, 1) for edge in (left, right, top, bottom))
    x, y = (left + right) / 2, (top + bottom) / 2
    w, h = (right - left).clamp(0, 1), (bottom - top).clamp(0, 1)
    moved = torch.stack((cls, x, y, w, h), dim=1)[:max_boxes]
    lowest_w, lowest_h = float(f32(1) / f32(net_w)), float(f32(1) / f32(net_h))
    kept = kept[:max_boxes] & (moved[:, 3] >= lowest_w) & (moved[:, 4] >= lowest_h)
    return moved[kept & (moved[:, 1] > 0) & (moved[:, 1] <= 1) & (moved[:, 2] > 0) & (moved[:, 2] <= 1)]
