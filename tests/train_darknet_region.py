# ruff: noqa: E741  (darknet names its layer `l`)
"""An independent transcription of darknet's [region] training pass (region_layer.c forward_region_layer,
get_region_box, delta_region_box, delta_region_class; DOABS = 1), in plain Python over darknet's flat
arrays. Test reference only: it never calls netcfg."""

from __future__ import annotations

import math

from train_darknet_box import Box, box_iou
from train_darknet_yolo import logistic


def logistic_gradient(y):
    return (1 - y) * y


def flatten(x, size, layers, batch, forward):
    swap = [0.0] * len(x)
    for b in range(batch):
        for c in range(layers):
            for i in range(size):
                i1 = b * layers * size + c * size + i
                i2 = b * layers * size + i * layers + c
                if forward:
                    swap[i2] = x[i1]
                else:
                    swap[i1] = x[i2]
    return swap


class RegionLayer:
    def __init__(self, w, h, n, classes, biases, softmax, **keys):
        self.w, self.h, self.n, self.classes, self.biases, self.softmax = w, h, n, classes, biases, softmax
        self.coords = 4
        self.outputs = h * w * n * (classes + 5)
        self.coord_scale = keys.get("coord_scale", 1.0)
        self.object_scale = keys.get("object_scale", 1.0)
        self.noobject_scale = keys.get("noobject_scale", 1.0)
        self.class_scale = keys.get("class_scale", 1.0)
        self.rescore = keys.get("rescore", 0)
        self.bias_match = keys.get("bias_match", 0)
        self.thresh = keys.get("thresh", 0.5)
        self.classfix = keys.get("classfix", 0)
        self.focal_loss = keys.get("focal_loss", 0)


def get_region_box(x, biases, n, index, i, j, w, h):
    return Box(
        (i + logistic(x[index + 0])) / w,
        (j + logistic(x[index + 1])) / h,
        math.exp(x[index + 2]) * biases[2 * n] / w,
        math.exp(x[index + 3]) * biases[2 * n + 1] / h,
    )


def delta_region_box(truth, x, biases, n, index, i, j, w, h, delta, scale):
    pred = get_region_box(x, biases, n, index, i, j, w, h)
    iou = box_iou(pred, truth)
    tx, ty = truth.x * w - i, truth.y * h - j
    tw, th = math.log(truth.w * w / biases[2 * n]), math.log(truth.h * h / biases[2 * n + 1])
    sx, sy = logistic(x[index + 0]), logistic(x[index + 1])
    delta[index + 0] = scale * (tx - sx) * logistic_gradient(sx)
    delta[index + 1] = scale * (ty - sy) * logistic_gradient(sy)
    delta[index + 2] = scale * (tw - x[index + 2])
    delta[index + 3] = scale * (th - x[index + 3])
    return iou


def delta_region_class(output, delta, index, class_id, classes, scale, focal_loss):
    if focal_loss:
        pt = output[index + class_id] + 0.000000000000001
        grad = -(1 - pt) * (2 * pt * math.log(pt) + pt - 1)
        for n in range(classes):
            delta[index + n] = scale * ((1 if n == class_id else 0) - output[index + n]) * 0.5 * grad
        return
    for n in range(classes):
        delta[index + n] = scale * ((1 if n == class_id else 0) - output[index + n])


def forward_region_layer(l, x, truths, batch, seen):
    """x: the layer input, flat (channel-major); truths: per image (x, y, w, h, class). Returns l.delta
    in the input's layout (darknet flattens it back at the end)."""
    size = l.coords + l.classes + 1
    output = flatten(list(x), l.w * l.h, size * l.n, batch, 1)
    for b in range(batch):
        for i in range(l.h * l.w * l.n):
            index = size * i + b * l.outputs
            output[index + 4] = logistic(output[index + 4])
            if l.softmax:
                values = output[index + 5 : index + 5 + l.classes]
                top = max(values)
                e = [math.exp(v - top) for v in values]
                output[index + 5 : index + 5 + l.classes] = [v / sum(e) for v in e]
    delta = [0.0] * (l.outputs * batch)
    for b in range(batch):
        for j in range(l.h):
            for i in range(l.w):
                for n in range(l.n):
                    index = size * (j * l.w * l.n + i * l.n + n) + b * l.outputs
                    pred = get_region_box(output, l.biases, n, index, i, j, l.w, l.h)
                    best_iou = 0
                    for t in truths[b]:
                        if int(t[4]) >= l.classes:
                            continue
                        if not t[0]:
                            break
                        iou = box_iou(pred, Box(*t[:4]))
                        if iou > best_iou:
                            best_iou = iou
                    o = output[index + 4]
                    delta[index + 4] = l.noobject_scale * ((0 - o) * logistic_gradient(o))
                    if l.classfix == -1:
                        delta[index + 4] = l.noobject_scale * ((best_iou - o) * logistic_gradient(o))
                    elif best_iou > l.thresh:
                        delta[index + 4] = 0
                    if seen < 12800:
                        truth = Box((i + 0.5) / l.w, (j + 0.5) / l.h, l.biases[2 * n] / l.w, l.biases[2 * n + 1] / l.h)
                        delta_region_box(truth, output, l.biases, n, index, i, j, l.w, l.h, delta, 0.01)
        for t in truths[b]:
            class_id = int(t[4])
            if class_id >= l.classes:
                continue
            if not t[0]:
                break
            truth = Box(*t[:4])
            i, j = int(truth.x * l.w), int(truth.y * l.h)
            shift = Box(0, 0, truth.w, truth.h)
            best_iou, best_index, best_n = 0, 0, 0
            for n in range(l.n):
                index = size * (j * l.w * l.n + i * l.n + n) + b * l.outputs
                pred = get_region_box(output, l.biases, n, index, i, j, l.w, l.h)
                if l.bias_match:
                    pred.w, pred.h = l.biases[2 * n] / l.w, l.biases[2 * n + 1] / l.h
                pred.x = pred.y = 0
                iou = box_iou(pred, shift)
                if iou > best_iou:
                    best_index, best_iou, best_n = index, iou, n
            iou = delta_region_box(truth, output, l.biases, best_n, best_index, i, j, l.w, l.h, delta, l.coord_scale)
            o = output[best_index + 4]
            delta[best_index + 4] = l.object_scale * (1 - o) * logistic_gradient(o)
            if l.rescore:
                delta[best_index + 4] = l.object_scale * (iou - o) * logistic_gradient(o)
            delta_region_class(output, delta, best_index + 5, class_id, l.classes, l.class_scale, l.focal_loss)
    return flatten(delta, l.w * l.h, size * l.n, batch, 0)
