"""darknet's training crop against transcriptions of its C (tests/train_darknet_crop.py): the jitter,
resize and letter_box window for any draws, the edge-repeating crop stretched by resize_image, and
the boxes moved, mirrored, clipped and filtered with it; then the dataset putting them together."""

from __future__ import annotations

import random

import pytest
import torch
import train_darknet_crop as dn
from hypothesis import given, settings
from hypothesis import strategies as st

import netcfg
from netcfg.detection.images import resize_image
from netcfg.train.crop import Window, crop_and_stretch, crop_window, move_boxes
from netcfg.train.data import Augment, DetectionDataset

unit = st.floats(0, 1, width=32)


@settings(max_examples=300, deadline=None)
@given(
    ow=st.integers(1, 3000),
    oh=st.integers(1, 3000),
    w=st.integers(1, 1024),
    h=st.integers(1, 1024),
    jitter=st.sampled_from([0.0, 0.1, 0.2, 0.3, 0.45]) | st.floats(0, 0.5, width=32),
    resize=st.sampled_from([1.0, 1.5, 0.7, 2.0]) | st.floats(0.0625, 8, width=32),
    letter_box=st.booleans(),
    draws=st.lists(unit, min_size=6, max_size=6),
)
def test_window_is_load_data_detections(ow, oh, w, h, jitter, resize, letter_box, draws):
    want = dn.detection_window(ow, oh, w, h, jitter, resize, letter_box, *draws)
    got = crop_window(ow, oh, w, h, jitter, resize, letter_box, draws)
    assert (got.left, got.top) == want[:2]
    assert (got.width, got.height) == (max(1, want[2]), max(1, want[3]))


@pytest.mark.parametrize("resize", [0.001, 1000.0])
def test_the_extreme_resizes_give_darknets_window(resize):
    draws = [0.3, 0.6, 0.9, 0.1, 0.5, 0.7]
    want = dn.detection_window(3000, 17, 608, 608, 0.3, resize, True, *draws)
    got = crop_window(3000, 17, 608, 608, 0.3, resize, True, draws)
    assert (got.left, got.top, got.width, got.height) == (want[0], want[1], max(1, want[2]), max(1, want[3]))
    assert crop_and_stretch(torch.rand(3, 17, 3000), got, 8, 8).isfinite().all()


def test_a_resize_whose_float_overflows_is_a_located_error():
    head = "[yolo]\nmask=0\nanchors=1,1\nclasses=2\nresize=1e300\n"
    cfg = "[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nfilters=7\nsize=1\n" + head
    with pytest.raises(netcfg.CfgError, match=r"<cfg>:12:1: \[yolo #1\] resize: input should be less than or equal"):
        netcfg.parse(cfg)


def test_a_window_of_no_width_keeps_one_pixel():
    """jitter near 1 moves both edges past each other; darknet would make an empty image."""
    window = crop_window(10, 10, 8, 8, 0.9, 1.0, False, [1.0, 1.0, 0.5, 0.5, 0.5, 0.5])
    assert window.width == 1 and dn.detection_window(10, 10, 8, 8, 0.9, 1.0, False, 1, 1, 0.5, 0.5, 0.5, 0.5)[2] < 1


WINDOWS = [
    Window(0, 0, 9, 7),  # the whole image: resize_image alone
    Window(2, 1, 5, 4),  # inside
    Window(-3, -2, 14, 12),  # past every edge: the edge repeats
    Window(6, 4, 6, 6),  # past the right and bottom
    Window(-1, 3, 1, 1),  # one pixel
]


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize(("net_w", "net_h"), [(9, 7), (5, 4), (13, 11), (1, 3)])
def test_crop_and_stretch_is_crop_image_then_resize_image(window, net_w, net_h):
    image = torch.rand(3, 7, 9, generator=torch.Generator().manual_seed(2))
    cropped = dn.crop_image(image.tolist(), window.left, window.top, window.width, window.height)
    want = torch.tensor(dn.resize_image(cropped, net_w, net_h), dtype=torch.float32)
    torch.testing.assert_close(crop_and_stretch(image, window, net_w, net_h), want, atol=5e-6, rtol=0)


BOXES = [
    [0, 0.5, 0.5, 0.2, 0.3],
    [1, 0.05, 0.9, 0.3, 0.4],  # cut by the left and bottom edges
    [2, 0.98, 0.1, 0.02, 0.05],  # at the right edge
    [3, 0.0, 0.0, 0.1, 0.1],  # x = y = 0: darknet drops it
    [4, 1.2, 0.5, 0.1, 0.1],  # wholly outside the image
    [5, 0.3, 0.3, 0.001, 0.2],  # under a pixel of the network
]


@pytest.mark.parametrize("flipped", [False, True])
@pytest.mark.parametrize("window", [Window(0, 0, 40, 30), Window(-8, 5, 50, 20), Window(10, -6, 20, 45)])
def test_boxes_move_as_correct_boxes_and_fill_truth_detection(window, flipped):
    rows = torch.tensor(BOXES)
    got = move_boxes(rows, window, 40, 30, flipped, 32, 24, 200, random.Random(0))
    want = dn.fill_truth(BOXES, window.left, window.top, window.width, window.height, 40, 30, flipped, 32, 24, 200)
    got = sorted(got.tolist())
    assert len(got) == len(want) and len(want) >= (2 if window.width == 40 else 1)
    torch.testing.assert_close(torch.tensor(got), torch.tensor(sorted(want)), atol=1e-6, rtol=0)


def test_boxes_are_shuffled_then_cut_to_max_boxes():
    rows = torch.tensor([[k, 0.1 + 0.08 * k, 0.5, 0.2, 0.2] for k in range(10)])
    orders = {
        tuple(move_boxes(rows, Window(0, 0, 10, 10), 10, 10, False, 8, 8, 4, random.Random(s))[:, 0].tolist())
        for s in range(20)
    }
    assert all(len(order) == 4 for order in orders) and len(orders) > 10


def _dataset(tmp_path, image: torch.Tensor, rows: str, augment: Augment, letterbox: bool = False):
    import numpy as np
    from PIL import Image

    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "labels").mkdir()
    pixels = (image.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    Image.fromarray(np.ascontiguousarray(pixels)).save(tmp_path / "JPEGImages" / "a.png")
    (tmp_path / "labels" / "a.txt").write_text(rows)
    return DetectionDataset([str(tmp_path / "JPEGImages" / "a.png")], (3, 24, 32), augment, letterbox)


def test_without_jitter_the_dataset_stretches_as_resize_image(tmp_path):
    image = (torch.rand(3, 30, 40, generator=torch.Generator().manual_seed(3)) * 255).round() / 255
    dataset = _dataset(tmp_path, image, "1 0.5 0.4 0.3 0.2\n", Augment())
    got, boxes = dataset[0]
    torch.testing.assert_close(got, resize_image(image, 32, 24), atol=5e-6, rtol=0)
    torch.testing.assert_close(boxes, torch.tensor([[1, 0.5, 0.4, 0.3, 0.2]]))


def test_letter_box_widens_the_window_and_jitter_moves_it(tmp_path):
    """A 40×20 image into a 32×24 input: letter_box adds 5 rows above and below (edges repeated),
    so the 10×10 patch is 8×8 at (8, 8); with jitter the image and its box move together."""
    image = torch.zeros(3, 20, 40)
    image[:, 5:15, 10:20] = 1.0
    dataset = _dataset(tmp_path, image, "0 0.375 0.5 0.25 0.5\n", Augment(), letterbox=True)
    got, boxes = dataset[0]
    x, y, w, h = (boxes[0, 1:] * torch.tensor([32, 24, 32, 24])).tolist()
    assert [x - w / 2, y - h / 2, x + w / 2, y + h / 2] == pytest.approx([8, 8, 16, 16], abs=1e-4)
    assert got[0, 12, 12] == 1 and got[0, 12, 20] == 0
    jittered = DetectionDataset(dataset.paths, (3, 24, 32), Augment(jitter=0.3), True, seed=5)
    for epoch in range(3):
        jittered.epoch = epoch
        got, boxes = jittered[0]
        x, y = int(boxes[0, 1] * 32), int(boxes[0, 2] * 24)
        assert got[0, y, x] > 0.5  # the box's centre is on the bright patch wherever it went


def test_mixup_blends_half_the_images_with_another_and_puts_its_boxes_first(tmp_path):
    """mixup=1 without OpenCV: blend_images(new, 0.5, old, 0.5), blend_truth (the other's boxes first)."""
    from PIL import Image

    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "labels").mkdir()
    paths = []
    for k in range(4):
        path = tmp_path / "JPEGImages" / f"{k}.png"
        Image.fromarray(torch.full((24, 32, 3), 50 * k + 20, dtype=torch.uint8).numpy()).save(path)
        (tmp_path / "labels" / f"{k}.txt").write_text(f"{k} 0.5 0.5 0.{k + 2} 0.{k + 2}\n")
        paths.append(str(path))
    plain = DetectionDataset(paths, (3, 24, 32), Augment())
    mixed = DetectionDataset(paths, (3, 24, 32), Augment(mixup=True))
    blends = 0
    for epoch in range(12):
        mixed.epoch = epoch
        for index in range(4):
            image, boxes = mixed[index]
            own, own_boxes = plain[index]
            if len(boxes) == 1:  # each image has one box: not blended
                torch.testing.assert_close((image, boxes), (own, own_boxes))
                continue
            blends += 1
            other = int(boxes[0, 0])
            second, second_boxes = plain[other]
            torch.testing.assert_close(image, second * 0.5 + own * 0.5)
            torch.testing.assert_close(boxes, torch.cat((second_boxes, own_boxes)))
    assert 12 <= blends <= 36  # about half of 48


@settings(max_examples=150, deadline=None)
@given(
    image_w=st.integers(1, 60),
    image_h=st.integers(1, 60),
    net=st.tuples(st.integers(1, 40), st.integers(1, 40)),
    jitter=st.floats(0, 0.99),
    resize=st.floats(0.001, 1000),
    letterbox=st.booleans(),
    flipped=st.booleans(),
    draws=st.lists(unit, min_size=6, max_size=6),
)
def test_any_image_and_window_give_the_input_size_and_boxes_inside(
    image_w, image_h, net, jitter, resize, letterbox, flipped, draws
):
    net_w, net_h = net
    window = crop_window(image_w, image_h, net_w, net_h, jitter, resize, letterbox, draws)
    image = torch.rand(3, image_h, image_w)
    out = crop_and_stretch(image, window, net_w, net_h)
    assert out.shape == (3, net_h, net_w) and out.isfinite().all() and out.min() >= 0 and out.max() <= 1
    boxes = torch.tensor([[0, 0.5, 0.5, 0.4, 0.3], [1, 0.1, 0.9, 0.2, 0.2]])
    moved = move_boxes(boxes, window, image_w, image_h, flipped, net_w, net_h, 200, random.Random(0))
    left, right = moved[:, 1] - moved[:, 3] / 2, moved[:, 1] + moved[:, 3] / 2
    assert moved.isfinite().all() and (left >= -1e-6).all() and (right <= 1 + 1e-6).all()
