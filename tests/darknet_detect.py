"""darknet's `detector test` pipeline transcribed from its C on plain Python floats and numpy
(loops as in the C), independent of netcfg.detect: image.c's resize_image / letterbox_image /
resize_min + crop_image, the heads' forward activations and get_*_detections, correct_yolo_boxes,
do_nms_sort / diounms_sort, and the listing of draw_detections_v3 (every class above thresh)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# ---------------------------------------------------------------- images


def scene(width: int, height: int, seed: int) -> np.ndarray:
    """A real-looking (H, W, 3) uint8 picture: a lit gradient, blurred shapes of several colours, noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([80 + 120 * xx / width, 60 + 100 * yy / height, 140 - 60 * xx / width], axis=-1)
    picture = Image.fromarray(base.clip(0, 255).astype(np.uint8))
    pen = ImageDraw.Draw(picture)
    for _ in range(7):
        x0, y0 = rng.uniform(0, width * 0.8), rng.uniform(0, height * 0.8)
        x1, y1 = x0 + rng.uniform(0.1, 0.5) * width, y0 + rng.uniform(0.1, 0.5) * height
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        (pen.ellipse if rng.random() < 0.5 else pen.rectangle)((x0, y0, x1, y1), fill=colour)
    picture = picture.filter(ImageFilter.GaussianBlur(1.2))
    noisy = np.asarray(picture, dtype=np.float32) + rng.normal(0, 6, (height, width, 3))
    return noisy.clip(0, 255).astype(np.uint8)


def chw(picture: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 → darknet's image: (3, H, W) float32 in [0, 1]."""
    return (picture.astype(np.float32) / 255).transpose(2, 0, 1).copy()


def resize_image(im: np.ndarray, w: int, h: int) -> np.ndarray:
    """image.c resize_image: a horizontal then a vertical linear pass, float32 as in C."""
    c, ih, iw = im.shape
    if (iw, ih) == (w, h):
        return im.copy()
    part = np.zeros((c, ih, w), np.float32)
    w_scale = np.float32(iw - 1) / np.float32(w - 1)
    h_scale = np.float32(ih - 1) / np.float32(h - 1)
    for col in range(w):
        if col == w - 1 or iw == 1:
            part[:, :, col] = im[:, :, iw - 1]
        else:
            sx = np.float32(col) * w_scale
            ix = int(sx)
            dx = np.float32(sx - np.float32(ix))
            part[:, :, col] = (np.float32(1) - dx) * im[:, :, ix] + dx * im[:, :, ix + 1]
    out = np.zeros((c, h, w), np.float32)
    for row in range(h):
        sy = np.float32(row) * h_scale
        iy = int(sy)
        dy = np.float32(sy - np.float32(iy))
        out[:, row] = (np.float32(1) - dy) * part[:, iy]
        if row == h - 1 or ih == 1:
            continue
        out[:, row] += dy * part[:, iy + 1]
    return out


def fitted_size(iw: int, ih: int, w: int, h: int) -> tuple[int, int]:
    """letterbox_image's new_w, new_h (also correct_yolo_boxes'): C integer division."""
    if np.float32(w) / np.float32(iw) < np.float32(h) / np.float32(ih):
        return w, (ih * w) // iw
    return (iw * h) // ih, h


def letterbox_image(im: np.ndarray, w: int, h: int) -> np.ndarray:
    new_w, new_h = fitted_size(im.shape[2], im.shape[1], w, h)
    boxed = np.full((im.shape[0], h, w), 0.5, np.float32)
    dx, dy = (w - new_w) // 2, (h - new_h) // 2
    boxed[:, dy : dy + new_h, dx : dx + new_w] = resize_image(im, new_w, new_h)
    return boxed


def classifier_input(im: np.ndarray, w: int, h: int) -> np.ndarray:
    """predict_classifier: resize_min(im, net.w), then crop_image at ((rw − w)/2, (rh − h)/2), clamped."""
    iw, ih = im.shape[2], im.shape[1]
    if iw < ih:
        rw, rh = w, (ih * w) // iw
    else:
        rw, rh = (iw * w) // ih, w
    resized = resize_image(im, rw, rh)
    dx, dy = int((rw - w) / 2), int((rh - h) / 2)
    out = np.zeros((im.shape[0], h, w), np.float32)
    for j in range(h):
        for i in range(w):
            out[:, j, i] = resized[:, min(max(j + dy, 0), rh - 1), min(max(i + dx, 0), rw - 1)]
    return out


# ---------------------------------------------------------------- detections


@dataclass
class Det:
    """darknet's `detection`: bbox (x, y, w, h, relative), objectness and prob[classes]."""

    bbox: list[float]
    objectness: float
    prob: list[float] = field(default_factory=list)


def logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def yolo_detections(x: np.ndarray, section, netw: int, neth: int, thresh: float, gaussian: bool = False) -> list[Det]:
    """forward_yolo_layer (or forward_gaussian_yolo_layer) then get_yolo_detections on one image's head
    input (C, H, W); boxes relative to the network input."""
    classes, mask = section.classes, section.used_mask
    anchors = list(section.anchors) + [0.5] * max(0, 2 * section.num - len(section.anchors))
    _, lh, lw = x.shape
    per = (9 if gaussian else 5) + classes
    p = x.reshape(len(mask), per, lh, lw).astype(np.float64)
    s = section.scale_x_y
    dets = []
    for i in range(lw * lh):
        row, col = i // lw, i % lw
        for n in range(len(mask)):
            v = p[n, :, row, col]
            a = mask[n]
            if gaussian:
                act = [logistic(t) for t in v]
                mx, my = act[0] * s - 0.5 * (s - 1), act[2] * s - 0.5 * (s - 1)
                objectness, uc = act[8], (act[1] + act[3] + act[5] + act[7]) / 4
                w, h = math.exp(v[4]) * anchors[2 * a] / netw, math.exp(v[6]) * anchors[2 * a + 1] / neth
                shift = {"center": 0.0, "left_top": 0.5, "right_bottom": -0.5}[section.yolo_point]
                box = [(col + mx) / lw + shift * w, (row + my) / lh + shift * h, w, h]
                scores = [objectness * act[9 + j] * (1 - uc) for j in range(classes)]
            else:
                mx, my = logistic(v[0]) * s - 0.5 * (s - 1), logistic(v[1]) * s - 0.5 * (s - 1)
                objectness = logistic(v[4])
                box = [
                    (col + mx) / lw,
                    (row + my) / lh,
                    math.exp(v[2]) * anchors[2 * a] / netw,
                    math.exp(v[3]) * anchors[2 * a + 1] / neth,
                ]
                scores = [objectness * logistic(v[5 + j]) for j in range(classes)]
            if objectness > thresh:
                dets.append(Det(box, objectness, [q if q > thresh else 0.0 for q in scores]))
    return dets


def region_detections(x: np.ndarray, section, thresh: float) -> list[Det]:
    """forward_region_layer (location-major flatten, logistic objectness, softmax classes), then
    custom_get_region_detections / get_region_boxes with w = h = 1: every box, objectness 1."""
    classes, num = section.classes, section.num
    _, lh, lw = x.shape
    p = x.reshape(num, 5 + classes, lh, lw).astype(np.float64)
    dets = []
    for i in range(lw * lh):
        row, col = i // lw, i % lw
        for n in range(num):
            v = p[n, :, row, col]
            scale = logistic(v[4])
            cls = list(v[5:])
            if section.softmax:
                top = max(cls)
                e = [math.exp(c - top) for c in cls]
                cls = [t / sum(e) for t in e]
            box = [
                (col + logistic(v[0])) / lw,
                (row + logistic(v[1])) / lh,
                math.exp(v[2]) * section.anchors[2 * n] / lw,
                math.exp(v[3]) * section.anchors[2 * n + 1] / lh,
            ]
            probs = [scale * c if scale * c > thresh else 0.0 for c in cls]
            dets.append(Det(box, 1.0, probs))
    return dets


def detection_detections(x: np.ndarray, section, thresh: float) -> list[Det]:
    """forward_detection_layer (per-cell class softmax when softmax=1), then get_detection_boxes with
    w = h = 1 (yolo.c's test_yolo): every box; objectness is the raw scale."""
    out = [float(v) for v in x.reshape(-1)]
    side, classes, num = section.side, section.classes, section.num
    if section.softmax:
        for i in range(side * side):
            cell = out[i * classes : (i + 1) * classes]
            top = max(cell)
            e = [math.exp(c - top) for c in cell]
            out[i * classes : (i + 1) * classes] = [t / sum(e) for t in e]
    dets = []
    for i in range(side * side):
        row, col = i // side, i % side
        for n in range(num):
            scale = out[side * side * classes + i * num + n]
            b = side * side * (classes + num) + (i * num + n) * 4
            power = 2 if section.sqrt else 1
            box = [(out[b] + col) / side, (out[b + 1] + row) / side, out[b + 2] ** power, out[b + 3] ** power]
            probs = [scale * out[i * classes + j] for j in range(classes)]
            dets.append(Det(box, scale, [q if q > thresh else 0.0 for q in probs]))
    return dets


def correct_yolo_boxes(dets: list[Det], w: int, h: int, netw: int, neth: int, letter: bool) -> None:
    """correct_yolo_boxes with relative=1, in place."""
    new_w, new_h = fitted_size(w, h, netw, neth) if letter else (netw, neth)
    for d in dets:
        x, y, bw, bh = d.bbox
        d.bbox = [
            (x - (netw - new_w) / 2.0 / netw) / (new_w / netw),
            (y - (neth - new_h) / 2.0 / neth) / (new_h / neth),
            bw * (netw / new_w),
            bh * (neth / new_h),
        ]


def overlap(x1: float, w1: float, x2: float, w2: float) -> float:
    return min(x1 + w1 / 2, x2 + w2 / 2) - max(x1 - w1 / 2, x2 - w2 / 2)


def box_iou(a: list[float], b: list[float]) -> float:
    w, h = overlap(a[0], a[2], b[0], b[2]), overlap(a[1], a[3], b[1], b[3])
    inter = 0.0 if w < 0 or h < 0 else w * h
    union = a[2] * a[3] + b[2] * b[3] - inter
    return 0.0 if inter == 0 or union == 0 else inter / union


def box_diou(a: list[float], b: list[float], beta: float) -> float:
    """box_diounms (box_diou is beta 0.6)."""
    top, bot = min(a[1] - a[3] / 2, b[1] - b[3] / 2), max(a[1] + a[3] / 2, b[1] + b[3] / 2)
    left, right = min(a[0] - a[2] / 2, b[0] - b[2] / 2), max(a[0] + a[2] / 2, b[0] + b[2] / 2)
    c = (right - left) ** 2 + (bot - top) ** 2
    iou = box_iou(a, b)
    if c == 0:
        return iou
    d = (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2
    return iou - (d / c) ** beta


def nms_sort(dets: list[Det], classes: int, thresh: float, kind: str = "default", beta: float = 0.6) -> list[Det]:
    """do_nms_sort (kind "default") or diounms_sort: drops objectness-0 detections, then per class sorts
    by that class's prob and zeroes the prob of each later box the kept one overlaps too much."""
    dets = [d for d in dets if d.objectness != 0]
    for k in range(classes):
        dets.sort(key=lambda d: -d.prob[k])
        for i, kept in enumerate(dets):
            if kept.prob[k] == 0:
                continue
            for other in dets[i + 1 :]:
                a, b = kept.bbox, other.bbox
                if kind in ("default", "cornersnms"):
                    hit = box_iou(a, b) > thresh
                else:
                    hit = box_diou(a, b, 0.6 if kind == "greedynms" else beta) > thresh
                if hit:
                    other.prob[k] = 0.0
    return dets


def listed(dets: list[Det], w: int, h: int, thresh: float) -> list[tuple[int, float, tuple[float, ...]]]:
    """(class, prob, pixel corners clipped to the image) for every class above thresh of every box."""
    rows = []
    for d in dets:
        x, y, bw, bh = d.bbox
        corners = ((x - bw / 2) * w, (y - bh / 2) * h, (x + bw / 2) * w, (y + bh / 2) * h)
        clipped = tuple(min(max(v, 0.0), float(limit)) for v, limit in zip(corners, (w, h, w, h)))
        rows.extend((k, p, clipped) for k, p in enumerate(d.prob) if p > thresh)
    return rows
