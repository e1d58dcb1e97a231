"""netcfg.detect against darknet's `detector test` on real darknet cfgs with seeded weights.

The reference never calls netcfg.detect: it preprocesses with a transcription of darknet's
resize_image / letterbox_image, runs OpenCV's darknet importer (`cv2.dnn`) on the same `.weights`
for the heads' raw inputs, and decodes, thresholds, corrects and suppresses them with the
transcriptions in `darknet_detect` (checked against `cv2.dnn.NMSBoxes` where darknet's NMS is
plain IoU). The head biases are lifted so that each image yields many boxes above threshold, some
of them overlapping: the comparison can not pass on empty lists.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import darknet_detect as dn
import numpy as np
import pytest
import torch
from conftest import SHARED_CFGS
from opencvkit import (
    OPENCV_VARIANCE_SHIFT,
    calibrate_batch_norm,
    file_layout,
    opencv_forward,
    opencv_names,
    opencv_net,
    randomize,
    sample_images,
    with_net_size,
    write_weights,
)

import netcfg
from netcfg.resources import bundled_cfgs

cv2 = pytest.importorskip("cv2")

THRESH, NMS = 0.25, 0.45
#: Classes whose scores the lifted biases make likely; the others are pushed well below threshold.
LIVE_CLASSES = 3
PIXEL, SCORE = 1.0, 1e-3


def cfg_text(name: str, width: int, height: int, letter_box: bool = False) -> str:
    """A bundled (`name.cfg`) or shared (`shared:path`) cfg at a small input size, optionally letterboxed."""
    if name.startswith("shared:"):
        path = SHARED_CFGS / name.removeprefix("shared:")
        if not path.is_file():
            pytest.skip(f"{path} is not present")
        text = path.read_text()
    else:
        text = bundled_cfgs()[name].read_text()
    text = with_net_size(text, width, height)
    return re.sub(r"(?m)^width=", "letter_box=1\nwidth=", text, count=1) if letter_box else text


def lift_head_biases(model: netcfg.Network, objectness: float, live: float, dead: float) -> None:
    """Raise each head's objectness bias and the first LIVE_CLASSES class biases; lower the other classes'."""
    for layer in model.spec.layers:
        kind, section = layer.section.type_name, layer.section
        if kind not in ("yolo", "Gaussian_yolo", "region", "detection"):
            continue
        bias = next(p for n, p in model.layers[layer.sources[0]].named_parameters() if n.endswith("bias"))
        classes = section.classes
        with torch.no_grad():
            if kind == "detection":
                cells = section.side**2
                scores = bias[: cells * classes].view(cells, classes)
                scores[:, :LIVE_CLASSES] += live
                scores[:, LIVE_CLASSES:] += dead
                bias[cells * classes : cells * (classes + section.num)] += objectness
                continue
            first = 9 if kind == "Gaussian_yolo" else 5
            per = bias.view(-1, first + classes)
            per[:, first - 1] += objectness
            per[:, first : first + LIVE_CLASSES] += live
            per[:, first + LIVE_CLASSES :] += dead


def seeded_model(text: str, tmp_path: Path, seed: int, lift: tuple[float, float, float]) -> tuple[Path, Path]:
    """Seeded weights for `text` saved by netcfg (`netcfg.weights`), and the cfg file."""
    cfg = tmp_path / "net.cfg"
    cfg.write_text(text)
    model = netcfg.build(text)
    randomize(model, seed)
    calibrate_batch_norm(model, sample_images(model.spec, seed + 1))
    lift_head_biases(model, *lift)
    netcfg.save_darknet_weights(model, tmp_path / "netcfg.weights")
    return cfg, tmp_path / "netcfg.weights"


def opencv_copy(model: netcfg.Network, weights: Path, tmp_path: Path) -> Path:
    """The weights with batch-norm variances raised for OpenCV's eps (see test_opencv)."""
    values = np.fromfile(weights, dtype="<f4", offset=20)
    for _, role, part in file_layout(model):
        if role == "bn.running_var":
            values[part] += OPENCV_VARIANCE_SHIFT
    return write_weights(tmp_path / "opencv.weights", values)


def reference(model: netcfg.Network, net, pictures: list[np.ndarray], check_nms: bool) -> list[list[tuple]]:
    """darknet's detections for each picture: transcribed preprocessing and decoding of OpenCV's head inputs."""
    spec = model.spec
    _, neth, netw = spec.input_shape
    letter = spec.net.letter_box
    heads = [layer for layer in spec.layers if layer.section.type_name in ("yolo", "region", "detection")]
    names = opencv_names(net)
    sources = [names[layer.sources[0]] for layer in heads]
    results = []
    for picture in pictures:
        im = dn.chw(picture)
        blob = (dn.letterbox_image if letter else dn.resize_image)(im, netw, neth)
        raw = opencv_forward(net, blob[None], sources)
        dets = []
        for layer, x in zip(heads, (r.reshape(r.shape[-3:]) for r in raw)):
            kind, section = layer.section.type_name, layer.section
            if kind == "yolo":
                dets += dn.yolo_detections(x, section, netw, neth, THRESH)
            elif kind == "region":
                dets += dn.region_detections(x, section, THRESH)
            else:
                dets += dn.detection_detections(x, section, THRESH)
        h, w = picture.shape[:2]
        dn.correct_yolo_boxes(dets, w, h, netw, neth, letter)
        last = [layer.section for layer in heads if layer.section.type_name != "detection"][-1]
        kind, beta = getattr(last, "nms_kind", "default"), getattr(last, "beta_nms", 0.6)
        before = copy.deepcopy(dets)
        dets = dn.nms_sort(dets, last.classes, NMS, kind, beta)
        if check_nms:
            assert_nms_boxes_agrees(before, dets, last.classes, w, h)
        results.append(dn.listed(dets, w, h, THRESH))
    return results


def assert_nms_boxes_agrees(before: list[dn.Det], after: list[dn.Det], classes: int, w: int, h: int) -> None:
    """OpenCV's NMSBoxes keeps, per class, the boxes the do_nms_sort transcription keeps (boxes scaled
    up 1000× so that its integer rectangles round nothing away; IoU does not change with scale)."""
    survivors = {(tuple(d.bbox), k) for d in after for k in range(classes) if d.prob[k] > 0}
    for k in range(classes):
        members = [d for d in before if d.prob[k] > 0]
        if not members:
            continue
        rects = [
            [1000 * w * (x - bw / 2), 1000 * h * (y - bh / 2), 1000 * w * bw, 1000 * h * bh]
            for x, y, bw, bh in (d.bbox for d in members)
        ]
        kept = cv2.dnn.NMSBoxes(rects, [d.prob[k] for d in members], THRESH, NMS)
        ours = {i for i, d in enumerate(members) if (tuple(d.bbox), k) in survivors}
        assert set(np.array(kept).reshape(-1).tolist()) == ours, f"class {k}: NMSBoxes keeps other boxes"


def assert_same_detections(ours: list[netcfg.Detection], theirs: list[tuple], what: str) -> None:
    """The same (class, score, box) rows, scores within SCORE and boxes within a pixel."""
    assert len(theirs) >= 3, f"{what}: only {len(theirs)} reference detections: the weights are not lifted enough"
    assert len(ours) == len(theirs), f"{what}: netcfg found {len(ours)} detections, darknet {len(theirs)}"
    unused = list(ours)
    for k, score, box in sorted(theirs, key=lambda row: -row[1]):
        match = next(
            (
                d
                for d in unused
                if d.class_id == k
                and abs(d.score - score) <= SCORE
                and max(abs(a - b) for a, b in zip(d.box, box)) <= PIXEL
            ),
            None,
        )
        assert match is not None, f"{what}: no netcfg detection matches class {k} score {score:.4f} box {box}"
        unused.remove(match)


OPENCV_CASES = {
    "yolov3-tiny": ("yolov3-tiny.cfg", False, (1.0, 1.0, -5.0)),
    "yolov3-tiny-letterbox": ("yolov3-tiny.cfg", True, (1.0, 1.0, -5.0)),
    "yolov4-tiny-letterbox-greedynms": ("shared:yolov4-tiny.cfg", True, (1.0, 1.0, -5.0)),
    "yolov2-tiny-region": ("shared:yolov2-tiny.cfg", False, (1.0, 4.0, -4.0)),
}


@pytest.mark.parametrize("case", OPENCV_CASES)
def test_detections_match_darknet_through_opencv(case, tmp_path):
    name, letter, lift = OPENCV_CASES[case]
    text = cfg_text(name, 128, 96, letter)
    cfg, weights = seeded_model(text, tmp_path, seed=3, lift=lift)
    model = netcfg.build(text, weights)
    net = opencv_net(cfg, opencv_copy(model, weights, tmp_path))
    pictures = [dn.scene(160, 120, 1), dn.scene(90, 150, 2)]
    last = [s for s in (layer.section for layer in model.spec.layers) if hasattr(s, "classes")][-1]
    expected = reference(model, net, pictures, check_nms=getattr(last, "nms_kind", "default") == "default")
    found = netcfg.detect(model, pictures, thresh=THRESH, nms=NMS)
    for n, (ours, theirs) in enumerate(zip(found, expected)):
        assert_same_detections(ours, theirs, f"{case} image {n}")
