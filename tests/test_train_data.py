"""The data side of `netcfg train`: darknet's HSV distortion (image.c, transcribed here per pixel)
and the .data file; the crop, stretch, flip and boxes are tests/test_train_crop.py's."""

from __future__ import annotations

import math

import pytest
import torch

import netcfg
from netcfg.train.augment import distort_image
from netcfg.train.data import read_data_file


def _rgb_to_hsv(r, g, b):
    high, low = max(r, g, b), min(r, g, b)
    delta = high - low
    if high == 0:
        return 0.0, 0.0, high
    s = delta / high
    if delta == 0:
        h = math.nan  # darknet divides 0 by 0 here; the hue of a grey pixel is never used
    elif r == high:
        h = (g - b) / delta
    elif g == high:
        h = 2 + (b - r) / delta
    else:
        h = 4 + (r - g) / delta
    if h < 0:
        h += 6
    return h / 6.0, s, high


def _hsv_to_rgb(h, s, v):
    h = 6 * h
    if s == 0:
        return v, v, v
    index = math.floor(h)
    f = h - index
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v)][index] if index < 5 else (v, p, q)


def _distort_image(pixels, hue, sat, val):
    out = []
    for r, g, b in pixels:
        h, s, v = _rgb_to_hsv(r, g, b)
        s, v = s * sat, v * val
        h = h + hue
        if h > 1:
            h -= 1
        if h < 0:
            h += 1
        out.append([min(max(c, 0.0), 1.0) for c in _hsv_to_rgb(h, s, v)])
    return out


@pytest.mark.parametrize(("dhue", "dsat", "dexp"), [(0.1, 1.5, 1.5), (-0.1, 1 / 1.5, 0.75), (0.3, 2.5, 1.0)])
def test_distort_image_is_darknets(dhue, dsat, dexp):
    g = torch.Generator().manual_seed(1)
    image = torch.rand(3, 6, 7, generator=g, dtype=torch.float64)
    image[:, 0, 0] = 0.4  # grey
    image[:, 0, 1] = 0.0  # black
    image[:, 0, 2] = torch.tensor([0.9, 0.1, 0.1])  # red: hue 0, wraps below 0 with a negative shift
    pixels = image.permute(1, 2, 0).reshape(-1, 3).tolist()
    expected = torch.tensor(_distort_image(pixels, dhue, dsat, dexp), dtype=torch.float64)
    got = distort_image(image, dhue, dsat, dexp).permute(1, 2, 0).reshape(-1, 3)
    torch.testing.assert_close(got, expected)


def test_data_file(tmp_path):
    path = tmp_path / "obj.data"
    path.write_text("classes= 2\ntrain  = a/train.txt\n# comment\nvalid = v.txt\nnames = obj.names\n")
    data = read_data_file(path)
    assert (data.classes, str(data.train), str(data.valid), str(data.backup)) == (2, "a/train.txt", "v.txt", "backup")
    path.write_text("classes = two\ntrain = t\n")
    with pytest.raises(netcfg.NetcfgError, match="classes = 'two' is not a whole number"):
        read_data_file(path)
    path.write_text("train t\n")
    with pytest.raises(netcfg.NetcfgError, match=r"obj.data:1: expected `key = value`"):
        read_data_file(path)
