"""darknet's photometric augmentation for detection: HSV jitter (image.c random_distort_image).
The crop, stretch and flip are `crop.py`'s. Images are (3, H, W) float tensors in [0, 1].
"""

from __future__ import annotations

import random

import torch


def rand_scale(s: float, rng: random.Random) -> float:
    """darknet's rand_scale: uniform between 1 and s, inverted half the time."""
    scale = rng.uniform(min(1.0, s), max(1.0, s))
    return scale if rng.random() < 0.5 else 1 / scale


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """(3, H, W) RGB → HSV with hue in [0, 1), as darknet's rgb_to_hsv."""
    r, g, b = rgb
    high, _ = rgb.max(dim=0)
    low, _ = rgb.min(dim=0)
    span = high - low
    safe = torch.where(span > 0, span, torch.ones_like(span))
    hue = torch.where(r == high, (g - b) / safe, torch.where(g == high, 2 + (b - r) / safe, 4 + (r - g) / safe))
    hue = torch.where(span > 0, hue, torch.zeros_like(hue)) / 6
    hue = torch.where(hue < 0, hue + 1, hue)
    sat = torch.where(high > 0, span / torch.where(high > 0, high, torch.ones_like(high)), torch.zeros_like(high))
    return torch.stack((hue, sat, high))


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """The inverse of `rgb_to_hsv`."""
    h, s, v = hsv
    sector = torch.floor(h * 6)
    f = h * 6 - sector
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    sector = sector.long().clamp(max=5)  # hue exactly 1 falls in darknet's last branch
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = torch.zeros_like(hsv)
    for k, (r, g, b) in enumerate(table):
        chosen = sector == k
        out = torch.where(chosen, torch.stack((r, g, b)), out)
    return out


def distort(image: torch.Tensor, hue: float, saturation: float, exposure: float, rng: random.Random) -> torch.Tensor:
    """darknet's random_distort_image: hue shifted by U(−hue, hue), saturation and value scaled by
    rand_scale."""
    if hue == 0 and saturation == 1 and exposure == 1:
        return image
    return distort_image(image, rng.uniform(-hue, hue), rand_scale(saturation, rng), rand_scale(exposure, rng))


def distort_image(image: torch.Tensor, dhue: float, dsat: float, dexp: float) -> torch.Tensor:
    """darknet's distort_image: in HSV, saturation × dsat, value × dexp, hue + dhue (wrapped into
    [0, 1]), back to RGB and clipped to [0, 1] (only then, as darknet's constrain_image)."""
    if image.shape[0] < 3:
        return (image * dexp).clamp(0, 1)
    h, s, v = rgb_to_hsv(image[:3])
    h = h + dhue
    h = torch.where(h > 1, h - 1, torch.where(h < 0, h + 1, h))
    rgb = hsv_to_rgb(torch.stack((h, s * dsat, v * dexp)))
    return torch.cat((rgb, image[3:]), dim=0).clamp(0, 1)
