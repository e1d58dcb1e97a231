"""The parts of netcfg.detect one at a time against the `darknet_detect` transcription: darknet's
resize, letterbox and classifier crop, box correction and every NMS kind; then image inputs,
class names and the errors for bad input."""

from __future__ import annotations

import darknet_detect as dn
import numpy as np
import pytest
import torch
from PIL import Image

import netcfg
from netcfg.detection import boxes
from netcfg.detection.boxes import Candidates, correct_boxes, suppress
from netcfg.detection.images import ImageError, classifier_image, letterbox_image, load_image, resize_image
from netcfg.detection.names import class_names

SIZES = [((160, 120), (64, 48)), ((37, 53), (96, 64)), ((64, 48), (64, 48)), ((200, 31), (33, 65))]


@pytest.mark.parametrize(("image", "net"), SIZES)
def test_resize_letterbox_and_crop_match_darknet(image, net):
    picture = dn.scene(*image, seed=sum(image))
    im = dn.chw(picture)
    x = torch.from_numpy(im)
    for ours, theirs in (
        (resize_image(x, *net), dn.resize_image(im, *net)),
        (letterbox_image(x, *net), dn.letterbox_image(im, *net)),
        (classifier_image(x, *net), dn.classifier_input(im, *net)),
    ):
        assert ours.shape == theirs.shape
        assert np.abs(ours.numpy() - theirs).max() < 2e-6


def random_candidates(seed: int, n: int = 60, classes: int = 3) -> tuple[Candidates, list[dn.Det]]:
    """Clustered boxes (so many overlap) with scores, some zero, as torch candidates and transcription dets."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.2, 0.8, (4, 2))[rng.integers(0, 4, n)] + rng.normal(0, 0.05, (n, 2))
    sizes = rng.uniform(0.05, 0.4, (n, 2))
    boxes = np.concatenate([centres, sizes], axis=1).astype(np.float32)
    scores = rng.uniform(0, 1, (n, classes)).astype(np.float32)
    scores[scores < 0.3] = 0
    boxes[0] = boxes[1]  # identical boxes: the enclosing diagonal is not zero, IoU is 1
    found = Candidates(torch.from_numpy(boxes), torch.ones(n), torch.from_numpy(scores))
    dets = [dn.Det([float(v) for v in b], 1.0, [float(v) for v in s]) for b, s in zip(boxes, scores)]
    return found, dets


@pytest.mark.parametrize("kind", ["default", "greedynms", "diounms", "cornersnms"])
@pytest.mark.parametrize(("seed", "block"), [(0, 2048), (1, 2048), (2, 7)])
def test_suppression_matches_darknet_nms(kind, seed, block, monkeypatch):
    monkeypatch.setattr(boxes, "NMS_BLOCK", block)
    found, dets = random_candidates(seed)
    survived = suppress(found, 0.45, kind, beta=0.9)
    position = {id(d): i for i, d in enumerate(dets)}
    expected = {position[id(d)]: d.prob for d in dn.nms_sort(dets, 3, 0.45, kind, beta=0.9)}
    for i, scores in enumerate(survived.tolist()):
        assert scores == pytest.approx(expected[i]), f"box {i}"
    assert (survived == 0).sum() > (found.scores == 0).sum(), "nothing was suppressed: the case is vacuous"


def test_nms_zero_suppresses_nothing():
    found, _ = random_candidates(3)
    assert torch.equal(suppress(found, 0.0), found.scores)


@pytest.mark.parametrize(("image", "net"), [((160, 90), (64, 64)), ((50, 200), (96, 64)), ((64, 48), (128, 96))])
def test_box_correction_matches_darknet(image, net):
    found, dets = random_candidates(4)
    for letter in (False, True):
        ours = correct_boxes(found.boxes, *image, *net, letter)
        theirs = [dn.Det(list(d.bbox), 1.0) for d in dets]
        dn.correct_yolo_boxes(theirs, *image, *net, letter)
        assert np.allclose(ours.numpy(), [d.bbox for d in theirs], atol=1e-6)


def test_every_image_form_reads_the_same(tmp_path):
    picture = dn.scene(40, 30, 1)
    Image.fromarray(picture).save(tmp_path / "a.png")
    Image.fromarray(picture).convert("RGBA").save(tmp_path / "rgba.png")
    expected = torch.from_numpy(dn.chw(picture))
    forms = [tmp_path / "a.png", str(tmp_path / "rgba.png"), Image.fromarray(picture), picture, expected]
    for form in forms:
        assert torch.allclose(load_image(form), expected, atol=1e-7), type(form)
    grey = load_image(picture[:, :, 0])
    assert grey.shape == (3, 30, 40) and torch.equal(grey[0], grey[2])
    assert load_image(picture, channels=1).shape == (1, 30, 40)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("missing.jpg", "no such image file"),
        (np.zeros((4, 4, 3), np.float32), "uint8"),
        (np.zeros((4, 4, 2), np.uint8), "(H, W, 1|3|4)"),
        (torch.zeros(2, 4, 4), "(C, H, W) floats"),
        (torch.zeros(3, 4, 4, dtype=torch.uint8), "(C, H, W) floats"),
        (42, "cannot read an image from a int"),
    ],
)
def test_bad_images_are_image_errors(image, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ImageError, match=re_escape(message)):
        load_image(image)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


def test_unreadable_file_is_an_image_error(tmp_path):
    (tmp_path / "bad.jpg").write_text("not an image")
    with pytest.raises(netcfg.NetcfgError, match="not an image Pillow can read"):
        load_image(tmp_path / "bad.jpg")


TINY = """[net]
width=32
height=32
channels=3
{net}
[convolutional]
filters=8
size=3
stride=4
pad=1
activation=leaky

[convolutional]
filters=21
size=1
activation=linear

[yolo]
mask=0,1,2
anchors=6,6, 12,10, 20,24
classes=2
num=3
"""


def test_a_network_without_a_head_and_bad_thresholds_are_refused():
    classifier = netcfg.build("[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=2\nsize=1\n")
    with pytest.raises(netcfg.NetcfgError, match="no detection head"):
        netcfg.detect(classifier, torch.rand(3, 8, 8))
    model = netcfg.build(TINY.format(net=""))
    for key in ("thresh", "nms", "hier_thresh"):
        with pytest.raises(netcfg.NetcfgError, match=f"{key}=1.5"):
            netcfg.detect(model, torch.rand(3, 8, 8), **{key: 1.5})


def test_batches_keep_image_order_and_training_mode():
    model = netcfg.build(TINY.format(net=""))
    with torch.no_grad():
        model.layers[1].conv.bias.view(3, 7)[:, 4:] += 3
    pictures = [torch.from_numpy(dn.chw(dn.scene(30 + 7 * n, 40, n))) for n in range(11)]
    model.train()
    together = netcfg.detect(model, torch.stack([resize_image(p, 37, 40) for p in pictures]))
    assert model.training
    one_by_one = [netcfg.detect(model, resize_image(p, 37, 40))[0] for p in pictures]
    assert len(together) == 11 and all(together)
    for batched, single in zip(together, one_by_one):  # batched convolutions round differently
        assert [d.class_id for d in batched] == [d.class_id for d in single]
        assert np.allclose([d.box for d in batched], [d.box for d in single], atol=1e-3)
        assert np.allclose([d.score for d in batched], [d.score for d in single], atol=1e-5)
    assert all(0 <= d.box[0] <= d.box[2] <= 37 and 0 <= d.box[1] <= d.box[3] <= 40 for d in together[0])
    assert together[0] == sorted(together[0], key=lambda d: -d.score)
    with pytest.raises(AttributeError):
        together[0][0].score = 1.0  # frozen


def test_class_names(tmp_path):
    assert class_names("coco", 80)[:3] == ["person", "bicycle", "car"] and class_names("coco", 80)[-1] == "toothbrush"
    assert class_names("voc", 20)[0] == "aeroplane" and len(class_names("voc", 20)) == 20
    (tmp_path / "my.names").write_bytes(b"cat \r\ndog\r\n\r\n")
    assert class_names(tmp_path / "my.names", 3) == ["cat", "dog", "class 2"]
    assert class_names(None, 2) == ["class 0", "class 1"]
    assert class_names(("a", "b"), 1) == ["a"]
    with pytest.raises(netcfg.NetcfgError, match="cannot read the names file"):
        class_names(tmp_path / "missing.names", 2)


def test_dont_show_classes_are_left_out():
    model = netcfg.build(TINY.format(net="letter_box=1"))
    with torch.no_grad():
        model.layers[1].conv.bias.view(3, 7)[:, 4:] += 3
    image = torch.rand(3, 20, 50)
    (shown,) = netcfg.detect(model, image, names=["a", "b"])
    (hidden,) = netcfg.detect(model, image, names=["dont_show a", "b"])
    assert {d.class_name for d in shown} == {"a", "b"}
    assert hidden == [d for d in shown if d.class_name == "b"]


def test_run_replaces_the_model_with_what_gives_its_outputs():
    model = netcfg.build(TINY.format(net="letter_box=1"))
    with torch.no_grad():
        model.layers[1].conv.bias.view(3, 7)[:, 4:] += 3
    image = torch.rand(3, 20, 50)
    scripted = torch.jit.script(model)
    direct = netcfg.detect(model, image)
    assert direct and netcfg.detect(model, image, run=lambda x: [t.numpy() for t in scripted(x)]) == direct
    with pytest.raises(netcfg.NetcfgError, match="must return the network's 1 outputs"):
        netcfg.detect(model, image, run=lambda x: [])


def test_the_detection_keys_are_validated_and_located():
    spec = netcfg.parse(TINY.format(net="letter_box=1") + "nms_kind=diounms\nbeta_nms=0.8\n")
    head = spec.layers[-1].section
    assert spec.net.letter_box and (head.nms_kind, head.beta_nms) == ("diounms", 0.8)
    assert netcfg.parse(TINY.format(net="")).layers[-1].section.nms_kind == "default"
    with pytest.raises(netcfg.CfgError, match=r":23:1: \[yolo #2\] nms_kind: .*did you mean 'diounms'"):
        netcfg.parse(TINY.format(net="") + "nms_kind=diounm\n")
    with pytest.raises(netcfg.CfgError, match="beta_nms"):
        netcfg.parse(TINY.format(net="") + "beta_nms=0\n")
