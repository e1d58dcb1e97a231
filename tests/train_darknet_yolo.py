# ruff: noqa: E741  (darknet names its layer `l`)
"""An independent transcription of darknet's [yolo] training pass (yolo_layer.c forward_yolo_layer,
process_batch, delta_yolo_box, delta_yolo_class; box.c in train_darknet_box.py), in plain
Python loops over darknet's flat arrays. Test reference only: it never calls netcfg."""

from __future__ import annotations

import math

from train_darknet_box import Box, box_iou, box_iou_kind, dx_box_iou

FLT_MAX = 3.4028234663852886e38


def fix_nan_inf(v):
    return 0.0 if math.isnan(v) or math.isinf(v) else v


def clip_value(v, m):
    return m if v > m else (-m if v < -m else v)


def logistic(v):
    return 1 / (1 + math.exp(-v))


class YoloLayer:
    """The fields of darknet's layer struct the training pass reads."""

    def __init__(self, w, h, n, total, mask, classes, biases, net_w, net_h, **keys):
        self.w, self.h, self.n, self.total, self.mask, self.classes = w, h, n, total, mask, classes
        self.biases, self.net_w, self.net_h = biases, net_w, net_h
        self.outputs = h * w * n * (classes + 5)
        self.ignore_thresh = keys.get("ignore_thresh", 0.5)
        self.truth_thresh = keys.get("truth_thresh", 1.0)
        self.iou_thresh = keys.get("iou_thresh", 1.0)
        self.iou_loss = keys.get("iou_loss", "mse")
        self.iou_thresh_kind = keys.get("iou_thresh_kind", "iou")
        self.iou_normalizer = keys.get("iou_normalizer", 0.75)
        self.cls_normalizer = keys.get("cls_normalizer", 1.0)
        self.obj_normalizer = keys.get("obj_normalizer", 1.0)
        self.label_smooth_eps = keys.get("label_smooth_eps", 0.0)
        self.max_delta = keys.get("max_delta", FLT_MAX)
        self.focal_loss = keys.get("focal_loss", 0)
        self.objectness_smooth = keys.get("objectness_smooth", 0)
        self.new_coords = keys.get("new_coords", 0)
        self.scale_x_y = keys.get("scale_x_y", 1.0)
        self.max_boxes = keys.get("max_boxes", 200)
        self.classes_multipliers = None
        counters = keys.get("counters_per_class")
        if counters:
            counters = [max(c, 1) for c in counters]
            self.classes_multipliers = [min(max(counters) / c, self.max_delta) for c in counters]

    def entry_index(self, b, location, entry):
        n, loc = location // (self.w * self.h), location % (self.w * self.h)
        return b * self.outputs + n * self.w * self.h * (4 + self.classes + 1) + entry * self.w * self.h + loc


def get_yolo_box(l, x, n, index, i, j, stride):
    if l.new_coords:
        return Box(
            (i + x[index]) / l.w,
            (j + x[index + stride]) / l.h,
            x[index + 2 * stride] ** 2 * 4 * l.biases[2 * n] / l.net_w,
            x[index + 3 * stride] ** 2 * 4 * l.biases[2 * n + 1] / l.net_h,
        )
    return Box(
        (i + x[index]) / l.w,
        (j + x[index + stride]) / l.h,
        math.exp(x[index + 2 * stride]) * l.biases[2 * n] / l.net_w,
        math.exp(x[index + 3 * stride]) * l.biases[2 * n + 1] / l.net_h,
    )


def delta_yolo_box(l, truth, x, n, index, i, j, delta, scale, stride, iou_normalizer):
    pred = get_yolo_box(l, x, n, index, i, j, stride)
    iou = box_iou(pred, truth)
    if pred.w == 0:
        pred.w = 1.0
    if pred.h == 0:
        pred.h = 1.0
    if l.iou_loss == "mse":
        tx, ty = truth.x * l.w - i, truth.y * l.h - j
        tw = math.log(truth.w * l.net_w / l.biases[2 * n])
        th = math.log(truth.h * l.net_h / l.biases[2 * n + 1])
        if l.new_coords:
            tw = math.sqrt(truth.w * l.net_w / (4 * l.biases[2 * n]))
            th = math.sqrt(truth.h * l.net_h / (4 * l.biases[2 * n + 1]))
        for k, target in enumerate((tx, ty, tw, th)):
            delta[index + k * stride] += scale * (target - x[index + k * stride]) * iou_normalizer
        return iou
    dx, dy, dw, dh = dx_box_iou(pred, truth, l.iou_loss)
    if not l.new_coords:
        dw *= math.exp(x[index + 2 * stride])
        dh *= math.exp(x[index + 3 * stride])
    for k, d in enumerate((dx, dy, dw, dh)):
        d = fix_nan_inf(d * iou_normalizer)
        if l.max_delta != FLT_MAX:
            d = clip_value(d, l.max_delta)
        delta[index + k * stride] += d
    return iou


def delta_yolo_class(l, output, delta, index, class_id, stride):
    eps = l.label_smooth_eps
    cm = l.classes_multipliers
    if delta[index + stride * class_id]:
        y_true = 1 * (1 - eps) + 0.5 * eps if eps else 1
        r = y_true - output[index + stride * class_id]
        if not (math.isnan(r) or math.isinf(r)):
            delta[index + stride * class_id] = r
        if cm:
            delta[index + stride * class_id] *= cm[class_id]
        return
    if l.focal_loss:
        pt = output[index + stride * class_id] + 0.000000000000001
        grad = -(1 - pt) * (2 * pt * math.log(pt) + pt - 1)
        for n in range(l.classes):
            delta[index + stride * n] = ((1 if n == class_id else 0) - output[index + stride * n]) * 0.5 * grad
        return
    for n in range(l.classes):
        y_true = 1 if n == class_id else 0
        if eps:
            y_true = y_true * (1 - eps) + 0.5 * eps
        r = y_true - output[index + stride * n]
        if not (math.isnan(r) or math.isinf(r)):
            delta[index + stride * n] = r
        if cm and n == class_id:
            delta[index + stride * class_id] *= cm[class_id] * l.cls_normalizer


def _activate(l, x, batch):
    out = list(x)
    for b in range(batch):
        for n in range(l.n):
            box = l.entry_index(b, n * l.w * l.h, 0)
            if not l.new_coords:
                for k in range(2 * l.w * l.h):
                    out[box + k] = logistic(out[box + k])
                obj = l.entry_index(b, n * l.w * l.h, 4)
                for k in range((1 + l.classes) * l.w * l.h):
                    out[obj + k] = logistic(out[obj + k])
            for k in range(2 * l.w * l.h):
                out[box + k] = out[box + k] * l.scale_x_y - 0.5 * (l.scale_x_y - 1)
    return out


def forward_yolo_layer(l, x, truths, batch):
    """x: the layer input, flat; truths: per image a list of (x, y, w, h, class). Returns l.delta (flat)."""
    output = _activate(l, x, batch)
    delta = [0.0] * (l.outputs * batch)
    for b in range(batch):
        _process_batch(l, output, delta, truths[b][: l.max_boxes], b)
    return delta


def _usable(l, truths):
    for t in truths:
        if not t[0]:
            return
        if 0 <= int(t[4]) < l.classes:
            yield t


def _process_batch(l, output, delta, truths, b):
    stride = l.w * l.h
    for j in range(l.h):
        for i in range(l.w):
            for n in range(l.n):
                loc = n * l.w * l.h + j * l.w + i
                class_index = l.entry_index(b, loc, 5)
                obj_index = l.entry_index(b, loc, 4)
                box_index = l.entry_index(b, loc, 0)
                pred = get_yolo_box(l, output, l.mask[n], box_index, i, j, stride)
                best_match_iou = best_iou = 0
                best_t = None
                class_match = any(output[class_index + stride * c] > 0.25 for c in range(l.classes))
                for t in _usable(l, truths):
                    iou = box_iou(pred, Box(*t[:4]))
                    if iou > best_match_iou and class_match:
                        best_match_iou = iou
                    if iou > best_iou:
                        best_iou, best_t = iou, t
                delta[obj_index] = l.obj_normalizer * (0 - output[obj_index])
                if best_match_iou > l.ignore_thresh:
                    if l.objectness_smooth:
                        d = l.obj_normalizer * (best_match_iou - output[obj_index])
                        if d > delta[obj_index]:
                            delta[obj_index] = d
                    else:
                        delta[obj_index] = 0
                if best_iou > l.truth_thresh:
                    mult = best_iou * best_iou
                    target = mult if l.objectness_smooth else 1
                    delta[obj_index] = l.obj_normalizer * (target - output[obj_index])
                    class_id = int(best_t[4])
                    delta_yolo_class(l, output, delta, class_index, class_id, stride)
                    cm = l.classes_multipliers[class_id] if l.classes_multipliers else 1.0
                    if l.objectness_smooth:
                        delta[class_index + stride * class_id] = cm * (mult - output[class_index + stride * class_id])
                    truth = Box(*best_t[:4])
                    scale = 2 - truth.w * truth.h
                    delta_yolo_box(
                        l, truth, output, l.mask[n], box_index, i, j, delta, scale, stride, l.iou_normalizer * cm
                    )
    for t in _usable(l, truths):
        _learn_truth(l, output, delta, t, b, stride)
    if l.iou_thresh < 1.0:
        for j in range(l.h):
            for i in range(l.w):
                for n in range(l.n):
                    loc = n * l.w * l.h + j * l.w + i
                    obj_index, box_index = l.entry_index(b, loc, 4), l.entry_index(b, loc, 0)
                    class_index = l.entry_index(b, loc, 5)
                    if delta[obj_index] != 0:
                        up = sum(1 for c in range(l.classes) if delta[class_index + stride * c] > 0)
                        if up > 0:
                            for k in range(4):
                                delta[box_index + k * stride] /= up


def _learn_truth(l, output, delta, t, b, stride):
    truth = Box(*t[:4])
    class_id = int(t[4])
    i, j = int(truth.x * l.w), int(truth.y * l.h)
    shift = Box(0, 0, truth.w, truth.h)
    best_iou, best_n = 0, 0
    for n in range(l.total):
        iou = box_iou(Box(0, 0, l.biases[2 * n] / l.net_w, l.biases[2 * n + 1] / l.net_h), shift)
        if iou > best_iou:
            best_iou, best_n = iou, n
    anchors = [best_n] + [
        n
        for n in range(l.total)
        if n != best_n
        and l.iou_thresh < 1.0
        and box_iou_kind(Box(0, 0, l.biases[2 * n] / l.net_w, l.biases[2 * n + 1] / l.net_h), shift, l.iou_thresh_kind)
        > l.iou_thresh
    ]
    for n in anchors:
        if n not in l.mask:
            continue
        mask_n = l.mask.index(n)
        loc = mask_n * l.w * l.h + j * l.w + i
        box_index = l.entry_index(b, loc, 0)
        cm = l.classes_multipliers[class_id] if l.classes_multipliers else 1.0
        delta_yolo_box(
            l, truth, output, n, box_index, i, j, delta, 2 - truth.w * truth.h, stride, l.iou_normalizer * cm
        )
        obj_index = l.entry_index(b, loc, 4)
        d = cm * l.obj_normalizer * (1 - output[obj_index])
        if l.objectness_smooth:
            if delta[obj_index] == 0:
                delta[obj_index] = d
        else:
            delta[obj_index] = d
        delta_yolo_class(l, output, delta, l.entry_index(b, loc, 5), class_id, stride)
