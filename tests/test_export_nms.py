"""`export_onnx(..., nms=True)`: the ONNX model returns darknet's detections, checked against an
independent numpy transcription of get_network_boxes' thresholds and do_nms_sort's greedy NMS run on
the network's decoded outputs. (With `dynamic=True` too, but exporting a data-dependent graph with
symbolic sizes takes minutes here, so the dynamic case is checked on the plain export.)"""

import numpy as np
import onnxruntime
import pytest
import torch
from exportcheck import seeded

import netcfg

#: Two heads of the same classes: a [yolo] at stride 2 and a [Gaussian_yolo] at stride 4.
CFG = """[net]
width=32
height=32
channels=3
[convolutional]
filters=8
size=3
stride=2
pad=1
batch_normalize=1
activation=leaky
[convolutional]
filters=21
size=1
activation=linear
[yolo]
mask=0,1,2
anchors=4,5, 8,9, 12,10, 6,14, 16,8, 20,20
num=6
classes=2
[route]
layers=-3
[maxpool]
size=2
stride=2
[convolutional]
filters=33
size=1
activation=linear
[Gaussian_yolo]
mask=3,4,5
anchors=4,5, 8,9, 12,10, 6,14, 16,8, 20,20
num=6
classes=2
"""
THRESH, NMS = 0.25, 0.45
GAUSSIAN_OUTPUT = 1  # the second output is the Gaussian head's


def _overlap(x1, w1, x2, w2):
    """darknet's overlap(): the length two centred segments share (negative when apart)."""
    return min(x1 + w1 / 2, x2 + w2 / 2) - max(x1 - w1 / 2, x2 - w2 / 2)


def _box_iou(a, b):
    """darknet's box_iou on (x, y, w, h) boxes."""
    w, h = _overlap(a[0], a[2], b[0], b[2]), _overlap(a[1], a[3], b[1], b[3])
    inter = 0.0 if w < 0 or h < 0 else w * h
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def darknet_detections(decoded: list[np.ndarray]) -> list[tuple]:
    """get_yolo_detections / get_gaussian_yolo_detections then do_nms_sort, per image: rows (batch,
    x1, y1, x2, y2, prob, class)."""
    found = []
    for b in range(decoded[0].shape[0]):
        boxes, probs = [], []
        for k, rows in enumerate(decoded):
            lead = 9 if k == GAUSSIAN_OUTPUT else 5
            for row in rows[b]:
                objectness = row[lead - 1]
                if objectness <= THRESH:
                    continue
                prob = objectness * row[lead:]
                if k == GAUSSIAN_OUTPUT:
                    prob = prob * (1.0 - (row[4] + row[5] + row[6] + row[7]) / 4.0)
                boxes.append(row[:4])
                probs.append(np.where(prob > THRESH, prob, 0.0))
        probs = np.array(probs).reshape(len(boxes), -1)
        for c in range(probs.shape[1]):
            order = sorted(range(len(boxes)), key=lambda i: -probs[i, c])
            for n, i in enumerate(order):
                if probs[i, c] == 0:
                    continue
                for j in order[n + 1 :]:
                    if _box_iou(boxes[i], boxes[j]) > NMS:
                        probs[j, c] = 0
            for i in order:
                if probs[i, c] > 0:
                    x, y, w, h = boxes[i]
                    found.append((b, x - w / 2, y - h / 2, x + w / 2, y + h / 2, probs[i, c], c))
    return found


def _same_detections(got: np.ndarray, want: list[tuple]) -> None:
    assert len(got) == len(want), f"{len(got)} detections, darknet's NMS keeps {len(want)}"
    unmatched = list(range(len(got)))
    for row in want:
        close = [g for g in unmatched if got[g, 0] == row[0] and got[g, 6] == row[6]]
        distance = [np.abs(got[g, 1:6] - np.array(row[1:6])).max() for g in close]
        assert close and min(distance) < 1e-3, f"no exported detection matches {row}"
        unmatched.remove(close[int(np.argmin(distance))])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = seeded(netcfg.build(CFG), seed=3)
    path = tmp_path_factory.mktemp("nms") / "boxes.onnx"
    return model, netcfg.export_onnx(model, path, nms=True)


def test_exported_nms_keeps_darknets_detections(exported):
    model, result = exported
    assert result.output_names == ("detections",)
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    for seed in (1, 2):
        shape = (1, 3, 32, 32)
        x = torch.rand(shape, generator=torch.Generator().manual_seed(seed))
        (got,) = session.run(None, {"images": x.numpy()})
        with torch.no_grad():
            decoded = [d.numpy().astype(np.float64) for d in model(x)]
        want = darknet_detections(decoded)
        assert len(want) >= 5, "too few detections to say anything: reseed the weights"
        assert {int(b) for b in got[:, 0]} == set(range(shape[0]))
        _same_detections(got, want)


def test_the_nms_export_reports_its_parity(exported):
    _, result = exported
    assert [p.input_shape for p in result.parity] == [(1, 3, 32, 32)]
    for parity in result.parity:
        assert parity.within(1e-4, 1e-4), parity


def test_nms_needs_a_detection_head():
    with pytest.raises(netcfg.NetcfgError, match="no detection head"):
        netcfg.export_onnx(netcfg.build("[net]\nwidth=8\nheight=8\nchannels=3\n[avgpool]\n"), nms=True)
