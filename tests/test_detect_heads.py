"""netcfg.detect on the heads OpenCV cannot run, against the `darknet_detect` transcription fed with
the network's own head inputs: YOLOv1's `[detection]` (shared yolov1/tiny-yolo.cfg) and a
letterboxed `[Gaussian_yolo]` with diounms. What is checked is everything after the layers:
preprocessing, decoding, thresholds, box correction and suppression."""

from __future__ import annotations

import darknet_detect as dn
import torch
from test_detect import NMS, THRESH, assert_same_detections, cfg_text, seeded_model

import netcfg

GAUSSIAN = """[net]
width=32
height=24
channels=3
letter_box=1

[convolutional]
filters=8
size=3
stride=2
pad=1
batch_normalize=1
activation=leaky

[convolutional]
filters=16
size=3
stride=2
pad=1
batch_normalize=1
activation=leaky

[convolutional]
filters=39
size=1
activation=linear

[Gaussian_yolo]
mask=0,1,2
anchors=8,10, 20,14, 30,36
classes=4
num=3
scale_x_y=1.1
nms_kind=diounms
beta_nms=0.8
"""


def head_inputs(model: netcfg.Network, blob, layers) -> list:
    """The network's output for each head's source layer on one preprocessed image."""
    sources = [layer.sources[0] for layer in layers]
    with torch.no_grad():
        outputs = model(torch.from_numpy(blob[None]), return_layers=sources)
    return [outputs[i][0].numpy() for i in sources]


def reference(model: netcfg.Network, picture) -> list[tuple]:
    spec = model.spec
    _, neth, netw = spec.input_shape
    letter = spec.net.letter_box
    heads = [layer for layer in spec.layers if layer.section.type_name in ("Gaussian_yolo", "detection")]
    blob = (dn.letterbox_image if letter else dn.resize_image)(dn.chw(picture), netw, neth)
    dets = []
    for layer, x in zip(heads, head_inputs(model, blob, heads)):
        if layer.section.type_name == "detection":
            dets += dn.detection_detections(x, layer.section, THRESH)
        else:
            dets += dn.yolo_detections(x, layer.section, netw, neth, THRESH, gaussian=True)
    h, w = picture.shape[:2]
    dn.correct_yolo_boxes(dets, w, h, netw, neth, letter)
    section = heads[-1].section
    kind, beta = getattr(section, "nms_kind", "default"), getattr(section, "beta_nms", 0.6)
    return dn.listed(dn.nms_sort(dets, section.classes, NMS, kind, beta), w, h, THRESH)


def lower_uncertainty(model: netcfg.Network) -> None:
    """Lower the σ biases of every [Gaussian_yolo] input, so (1 − mean σ) leaves scores above threshold."""
    for layer in model.spec.layers:
        if layer.section.type_name == "Gaussian_yolo":
            bias = model.layers[layer.sources[0]].conv.bias
            with torch.no_grad():
                bias.view(-1, 9 + layer.section.classes)[:, [1, 3, 5, 7]] -= 3


def check(text: str, tmp_path, lift) -> None:
    _, weights = seeded_model(text, tmp_path, seed=5, lift=lift)
    model = netcfg.build(text, weights)
    lower_uncertainty(model)
    pictures = [dn.scene(120, 90, 7), dn.scene(70, 110, 8)]
    found = netcfg.detect(model, pictures, thresh=THRESH, nms=NMS)
    for n, picture in enumerate(pictures):
        assert_same_detections(found[n], reference(model, picture), f"image {n}")


def test_yolov1_detection_head_matches_darknet(tmp_path):
    check(cfg_text("shared:yolov1/tiny-yolo.cfg", 64, 64), tmp_path, (0.6, 0.6, -0.6))


def test_gaussian_yolo_letterboxed_with_diounms_matches_darknet(tmp_path):
    check(GAUSSIAN, tmp_path, (1.5, 3.0, -5.0))
