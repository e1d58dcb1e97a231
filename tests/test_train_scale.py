"""darknet's multi-scale training against a transcription of detector.c's resize block, and the
dataset's mini-batches following the size the training loop sets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from netcfg.train.data import DetectionDataset
from netcfg.train.loop import batches
from netcfg.train.scale import InputSize, scale_coefficient, scaled_size

F = np.float32


def roundl(x):
    return math.floor(float(x) + 0.5) if x >= 0 else math.ceil(float(x) - 0.5)


def darknet_dims(init_w, init_h, random, random_val, resize_step, avg_loss, iteration, max_batches):
    """detector.c train_detector: dim_w, dim_h after `if (l.random && count++ % 10 == 0)`."""
    rand_coef = F(1.4)
    if random != 1.0:
        rand_coef = F(random)
    random_val = F(random_val)
    dim_w = roundl(random_val * F(init_w) / F(resize_step) + F(1)) * resize_step
    dim_h = roundl(random_val * F(init_h) / F(resize_step) + F(1)) * resize_step
    if random_val < 1 and (dim_w > init_w or dim_h > init_h):
        dim_w, dim_h = init_w, init_h
    max_dim_w = roundl(rand_coef * F(init_w) / F(resize_step) + F(1)) * resize_step
    max_dim_h = roundl(rand_coef * F(init_h) / F(resize_step) + F(1)) * resize_step
    if avg_loss < 0 or iteration > max_batches - 100:
        dim_w, dim_h = max_dim_w, max_dim_h
    if dim_w < resize_step:
        dim_w = resize_step
    if dim_h < resize_step:
        dim_h = resize_step
    return dim_w, dim_h


@settings(max_examples=300, deadline=None)
@given(
    size=st.tuples(st.integers(32, 1024), st.integers(32, 1024)),
    random=st.sampled_from([1.0, 1.2, 2.0, 0.5]),
    draw=st.floats(0, 1),
    step=st.sampled_from([32, 16, 64, 1]),
    late=st.booleans(),
)
def test_sizes_are_detector_cs(size, random, draw, step, late):
    w, h = size
    coefficient = scale_coefficient(random)
    low, high = min(1.0, coefficient), max(1.0, coefficient)
    factor = low + draw * (high - low)
    for value in (factor, 1 / factor):
        want = darknet_dims(w, h, random, value, step, 1.0, 1000 if late else 0, 1050)
        assert scaled_size(w, h, coefficient, value, step, late)[::-1] == want


def test_the_classic_range_for_416():
    """random=1 on a 416×416 cfg: 320 to 608, as darknet prints."""
    sizes = {scaled_size(416, 416, 1.4, f, 32, False)[0] for f in np.linspace(1 / 1.4, 1.4, 500)}
    assert min(sizes) == 320 and max(sizes) == 608 and all(s % 32 == 0 for s in sizes)


def test_mini_batches_follow_the_size_set_between_them(tmp_path):
    from PIL import Image

    (tmp_path / "JPEGImages").mkdir()
    paths = []
    for k in range(4):
        path = tmp_path / "JPEGImages" / f"{k}.png"
        Image.fromarray(np.full((20, 30, 3), 40 * k, dtype=np.uint8)).save(path)
        paths.append(str(path))
    size = InputSize(32, 32)
    dataset = DetectionDataset(paths, (3, 32, 32))
    stream = batches(dataset, 2, 0, 1, 0, 0, size)
    assert next(stream)[0].shape == (2, 3, 32, 32)
    size.current = (64, 96)
    assert next(stream)[0].shape == (2, 3, 64, 96)
    assert next(stream)[0].shape == (2, 3, 64, 96)  # into the next epoch
    assert torch.equal(dataset[0][0], dataset[(0, (32, 32))][0])


def _spec(random: str):
    import netcfg

    head = f"[yolo]\nmask=0\nanchors=1,1\nclasses=2\nrandom={random}\n"
    return netcfg.parse("[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nfilters=7\nsize=1\n" + head)


def test_sizes_the_budget_refuses_are_refused_before_training():
    import netcfg
    from netcfg.train.scale import MultiScale

    spec = _spec("1")
    MultiScale(spec.net, 1.0, 10, 0).check(spec)
    huge = _spec("1000")
    with pytest.raises(netcfg.NetcfgError, match=r"random=1000: .* 32032 x 32032: <cfg>:8:1: \[yolo #1\] one forward"):
        MultiScale(huge.net, 1000.0, 10, 0).check(huge)


@pytest.mark.parametrize(
    ("random", "message"),
    [
        ("1e-300", "random is 0 \\(off\\) or a scale factor of at least 0.001"),
        ("1e300", "input should be less than or equal to 1000"),
    ],
)
def test_a_random_whose_float32_inverse_overflows_is_a_located_error(random, message):
    import netcfg

    with pytest.raises(netcfg.CfgError, match=rf"<cfg>:12:1: \[yolo #1\] random: {message}"):
        _spec(random)


def test_the_cfgs_resize_step_rounds_the_sizes():
    import random as rand

    import netcfg
    from netcfg.train.data import Augment
    from netcfg.train.scale import draw_size

    body = "[convolutional]\nfilters=7\nsize=1\n[yolo]\nmask=0\nanchors=1,1\nclasses=2\nrandom=1\n"
    spec = netcfg.parse("[net]\nwidth=416\nheight=416\nchannels=3\nresize_step=16\nmixup=1\n" + body)
    want = darknet_dims(416, 416, 1.0, 1.0, 16, -1.0, 0, 1000)  # the first update: the largest size
    assert draw_size(spec.net, 1.0, True, rand.Random(0))[::-1] == want == (592, 592)
    assert Augment.from_cfg(spec.net, spec.layers[-1].section).mixup
