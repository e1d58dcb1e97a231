# ruff: noqa: E741  (darknet names its layer `l`)
"""An independent transcription of darknet's [Gaussian_yolo] training pass (gaussian_yolo_layer.c
forward_gaussian_yolo_layer, get_gaussian_yolo_box, delta_gaussian_yolo_box, delta_gaussian_yolo_class,
averages_gaussian_yolo_deltas; box.c in train_darknet_box.py), in plain Python loops over darknet's
flat arrays. Test reference only: it never calls netcfg.

One departure from the C: the assignment loop skips a truth whose class the layer lacks (darknet
has no check there and writes past the entry's class deltas)."""

from __future__ import annotations

import math

from train_darknet_box import Box, box_giou, box_iou, box_iou_kind, dx_box_iou

FLT_MAX = 3.4028234663852886e38
CENTER, LEFT_TOP, RIGHT_BOTTOM = "center", "left_top", "right_bottom"


def fix_nan_inf(v):
    return 0.0 if math.isnan(v) or math.isinf(v) else v


def clip_value(v, m):
    return m if v > m else (-m if v < -m else v)


def logistic(v):
    return 1 / (1 + math.exp(-v))


class GaussianLayer:
    """The fields of darknet's layer struct the training pass reads (parse_gaussian_yolo's defaults)."""

    def __init__(self, w, h, n, total, mask, classes, biases, net_w, net_h, **keys):
        self.w, self.h, self.n, self.total, self.mask, self.classes = w, h, n, total, mask, classes
        self.biases, self.net_w, self.net_h = biases, net_w, net_h
        self.outputs = h * w * n * (classes + 8 + 1)
        self.ignore_thresh = keys.get("ignore_thresh", 0.5)
        self.truth_thresh = keys.get("truth_thresh", 1.0)
        self.iou_thresh = keys.get("iou_thresh", 1.0)
        self.iou_loss = keys.get("iou_loss", "mse")
        self.iou_thresh_kind = keys.get("iou_thresh_kind", "iou")
        self.iou_normalizer = keys.get("iou_normalizer", 0.75)
        self.uc_normalizer = keys.get("uc_normalizer", 1.0)
        self.cls_normalizer = keys.get("cls_normalizer", 1.0)
        self.obj_normalizer = keys.get("obj_normalizer", 1.0)
        self.label_smooth_eps = keys.get("label_smooth_eps", 0.0)
        self.max_delta = keys.get("max_delta", FLT_MAX)
        self.objectness_smooth = keys.get("objectness_smooth", 0)
        self.scale_x_y = keys.get("scale_x_y", 1.0)
        self.yolo_point = keys.get("yolo_point", CENTER)
        self.max_boxes = keys.get("max_boxes", 200)
        self.classes_multipliers = None
        counters = keys.get("counters_per_class")
        if counters:
            counters = [max(c, 1) for c in counters]
            self.classes_multipliers = [min(max(counters) / c, self.max_delta) for c in counters]


def entry_gaussian_index(l, batch, location, entry):
    n, loc = location // (l.w * l.h), location % (l.w * l.h)
    return batch * l.outputs + n * l.w * l.h * (8 + l.classes + 1) + entry * l.w * l.h + loc


def get_gaussian_yolo_box(x, biases, n, index, i, j, lw, lh, w, h, stride, yolo_point):
    bw = math.exp(x[index + 4 * stride]) * biases[2 * n] / w
    bh = math.exp(x[index + 6 * stride]) * biases[2 * n + 1] / h
    bx = (i + x[index + 0 * stride]) / lw
    by = (j + x[index + 2 * stride]) / lh
    if yolo_point == LEFT_TOP:
        bx = (i + x[index + 0 * stride]) / lw + bw / 2
        by = (j + x[index + 2 * stride]) / lh + bh / 2
    elif yolo_point == RIGHT_BOTTOM:
        bx = (i + x[index + 0 * stride]) / lw - bw / 2
        by = (j + x[index + 2 * stride]) / lh - bh / 2
    return Box(bx, by, bw, bh)


def _normal(d, sigma):
    """in_exp, in_exp², and the density darknet computes for one coordinate."""
    in_exp = d / sigma
    in_exp_2 = in_exp**2
    return in_exp, in_exp_2, math.exp(in_exp_2 * (-1.0 / 2.0)) / (math.sqrt(math.pi * 2.0) * (sigma + 0.3))


def delta_gaussian_yolo_box(
    l, truth, x, biases, n, index, i, j, lw, lh, w, h, delta, scale, stride, iou_normalizer, accumulate
):
    pred = get_gaussian_yolo_box(x, biases, n, index, i, j, lw, lh, w, h, stride, l.yolo_point)
    iou = box_iou(pred, truth)
    giou = box_giou(pred, truth)
    if pred.w == 0:
        pred.w = 1.0
    if pred.h == 0:
        pred.h = 1.0
    sigma_const = 0.3
    epsi = 10**-9
    tx = truth.x * lw - i
    ty = truth.y * lh - j
    tw = math.log(truth.w * w / biases[2 * n])
    th = math.log(truth.h * h / biases[2 * n + 1])
    if l.yolo_point == LEFT_TOP:
        tx = (truth.x - truth.w / 2) * lw - i
        ty = (truth.y - truth.h / 2) * lh - j
    elif l.yolo_point == RIGHT_BOTTOM:
        tx = (truth.x + truth.w / 2) * lw - i
        ty = (truth.y + truth.h / 2) * lh - j
    mus = []
    ucs = []
    for k, target in enumerate((tx, ty, tw, th)):
        mu, sigma = x[index + 2 * k * stride], x[index + (2 * k + 1) * stride]
        in_exp, in_exp_2, normal = _normal(target - mu, sigma)
        temp = (1.0 / 2.0) * 1.0 / (normal + epsi) * normal * scale
        mus.append(temp * in_exp * (1.0 / sigma))
        ucs.append(temp * (in_exp_2 / sigma - 1.0 / (sigma + sigma_const)))
    if not accumulate:
        for k in range(8):
            delta[index + k * stride] = 0
    if l.iou_loss != "mse":
        iou = giou
        dx, dy, dw, dh = dx_box_iou(pred, truth, l.iou_loss)
        if l.yolo_point == LEFT_TOP:
            dx, dy = dx - dw / 2, dy - dh / 2
        elif l.yolo_point == RIGHT_BOTTOM:
            dx, dy = dx + dw / 2, dy + dh / 2
        dw *= math.exp(x[index + 4 * stride])
        dh *= math.exp(x[index + 6 * stride])
        mus = [dx, dy, dw, dh]
    mus = [fix_nan_inf(v * iou_normalizer) for v in mus]
    ucs = [fix_nan_inf(v * l.uc_normalizer) for v in ucs]
    if l.max_delta != FLT_MAX:
        mus = [clip_value(v, l.max_delta) for v in mus]
        ucs = [clip_value(v, l.max_delta) for v in ucs]
    for k in range(4):
        delta[index + 2 * k * stride] += mus[k]
        delta[index + (2 * k + 1) * stride] += ucs[k]
    return iou


def averages_gaussian_yolo_deltas(class_index, box_index, stride, classes, delta):
    classes_in_one_box = sum(1 for c in range(classes) if delta[class_index + stride * c] > 0)
    if classes_in_one_box > 0:
        for k in range(8):
            delta[box_index + k * stride] /= classes_in_one_box


def delta_gaussian_yolo_class(output, delta, index, class_id, classes, stride, eps, cm, cls_normalizer):
    if delta[index]:
        y_true = 1
        if eps:
            y_true = y_true * (1 - eps) + 0.5 * eps
        delta[index + stride * class_id] = y_true - output[index + stride * class_id]
        if cm:
            delta[index + stride * class_id] *= cm[class_id]
        return
    for n in range(classes):
        y_true = 1 if n == class_id else 0
        if eps:
            y_true = y_true * (1 - eps) + 0.5 * eps
        delta[index + stride * n] = y_true - output[index + stride * n]
        if cm and n == class_id:
            delta[index + stride * class_id] *= cm[class_id] * cls_normalizer


def _activate(l, x, batch):
    out = list(x)
    wh = l.w * l.h
    for b in range(batch):
        for n in range(l.n):
            for entry in (0, 2):
                index = entry_gaussian_index(l, b, n * wh, entry)
                for k in range(2 * wh):
                    out[index + k] = logistic(out[index + k])
                for k in range(wh):
                    out[index + k] = out[index + k] * l.scale_x_y - 0.5 * (l.scale_x_y - 1)
            for entry in (5, 7):
                index = entry_gaussian_index(l, b, n * wh, entry)
                for k in range(wh):
                    out[index + k] = logistic(out[index + k])
            index = entry_gaussian_index(l, b, n * wh, 8)
            for k in range((1 + l.classes) * wh):
                out[index + k] = logistic(out[index + k])
    return out


def forward_gaussian_yolo_layer(l, x, truths, batch):
    """x: the layer input, flat; truths: per image a list of (x, y, w, h, class). Returns l.delta (flat)."""
    output = _activate(l, x, batch)
    delta = [0.0] * (l.outputs * batch)
    for b in range(batch):
        rows = truths[b][: l.max_boxes]
        _first_pass(l, output, delta, rows, b)
        for t in rows:
            if not t[0]:
                break
            if int(t[4]) >= l.classes:
                continue
            _learn_truth(l, output, delta, t, b)
        for j in range(l.h):
            for i in range(l.w):
                for n in range(l.n):
                    loc = n * l.w * l.h + j * l.w + i
                    box_index = entry_gaussian_index(l, b, loc, 0)
                    class_index = entry_gaussian_index(l, b, loc, 9)
                    averages_gaussian_yolo_deltas(class_index, box_index, l.w * l.h, l.classes, delta)
    return delta


def _first_pass(l, output, delta, rows, b):
    stride = l.w * l.h
    for j in range(l.h):
        for i in range(l.w):
            for n in range(l.n):
                loc = n * l.w * l.h + j * l.w + i
                class_index = entry_gaussian_index(l, b, loc, 9)
                obj_index = entry_gaussian_index(l, b, loc, 8)
                box_index = entry_gaussian_index(l, b, loc, 0)
                pred = get_gaussian_yolo_box(
                    output, l.biases, l.mask[n], box_index, i, j, l.w, l.h, l.net_w, l.net_h, stride, l.yolo_point
                )
                best_match_iou = best_iou = 0
                best_match_t = best_t = 0
                for t, row in enumerate(rows):
                    truth = Box(*row[:4])
                    if int(row[4]) >= l.classes:
                        continue
                    if not truth.x:
                        break
                    class_id_match = any(output[class_index + stride * c] > 0.25 for c in range(l.classes))
                    iou = box_iou(pred, truth)
                    if iou > best_match_iou and class_id_match:
                        best_match_iou, best_match_t = iou, t
                    if iou > best_iou:
                        best_iou, best_t = iou, t
                delta[obj_index] = l.obj_normalizer * (0 - output[obj_index])
                if best_match_iou > l.ignore_thresh:
                    iou_multiplier = best_match_iou * best_match_iou
                    if l.objectness_smooth:
                        delta[obj_index] = l.obj_normalizer * (iou_multiplier - output[obj_index])
                        class_id = int(rows[best_match_t][4])
                        delta_gaussian_yolo_class(
                            output, delta, class_index, class_id, l.classes, stride,
                            l.label_smooth_eps, l.classes_multipliers, l.cls_normalizer,
                        )  # fmt: skip
                    else:
                        delta[obj_index] = 0
                if best_iou > l.truth_thresh:
                    iou_multiplier = best_iou * best_iou
                    if l.objectness_smooth:
                        delta[obj_index] = l.obj_normalizer * (iou_multiplier - output[obj_index])
                    else:
                        delta[obj_index] = l.obj_normalizer * (1 - output[obj_index])
                    class_id = int(rows[best_t][4])
                    delta_gaussian_yolo_class(
                        output, delta, class_index, class_id, l.classes, stride,
                        l.label_smooth_eps, l.classes_multipliers, l.cls_normalizer,
                    )  # fmt: skip
                    cm = l.classes_multipliers[class_id] if l.classes_multipliers else 1.0
                    if l.objectness_smooth:
                        delta[class_index + stride * class_id] = cm * (
                            iou_multiplier - output[class_index + stride * class_id]
                        )
                    truth = Box(*rows[best_t][:4])
                    delta_gaussian_yolo_box(
                        l, truth, output, l.biases, l.mask[n], box_index, i, j, l.w, l.h, l.net_w, l.net_h,
                        delta, 2 - truth.w * truth.h, stride, l.iou_normalizer * cm, 1,
                    )  # fmt: skip


def _cell(l, truth):
    i, j = int(truth.x * l.w), int(truth.y * l.h)
    if l.yolo_point == LEFT_TOP:
        i = int(min(l.w - 1, max(0, (truth.x - truth.w / 2) * l.w)))
        j = int(min(l.h - 1, max(0, (truth.y - truth.h / 2) * l.h)))
    elif l.yolo_point == RIGHT_BOTTOM:
        i = int(min(l.w - 1, max(0, (truth.x + truth.w / 2) * l.w)))
        j = int(min(l.h - 1, max(0, (truth.y + truth.h / 2) * l.h)))
    return i, j


def _learn_truth(l, output, delta, row, b):
    truth = Box(*row[:4])
    class_id = int(row[4])
    i, j = _cell(l, truth)
    shift = Box(0, 0, truth.w, truth.h)
    best_iou, best_n = 0, 0
    for n in range(l.total):
        iou = box_iou(Box(0, 0, l.biases[2 * n] / l.net_w, l.biases[2 * n + 1] / l.net_h), shift)
        if iou > best_iou:
            best_iou, best_n = iou, n
    if best_n in l.mask:
        _learn_at(l, output, delta, truth, class_id, best_n, b, i, j)
    for n in range(l.total):
        if n in l.mask and n != best_n and l.iou_thresh < 1.0:
            pred = Box(0, 0, l.biases[2 * n] / l.net_w, l.biases[2 * n + 1] / l.net_h)
            if box_iou_kind(pred, shift, l.iou_thresh_kind) > l.iou_thresh:
                _learn_at(l, output, delta, truth, class_id, n, b, i, j)


def _learn_at(l, output, delta, truth, class_id, n, b, i, j):
    stride = l.w * l.h
    mask_n = l.mask.index(n)
    loc = mask_n * l.w * l.h + j * l.w + i
    box_index = entry_gaussian_index(l, b, loc, 0)
    cm = l.classes_multipliers[class_id] if l.classes_multipliers else 1.0
    delta_gaussian_yolo_box(
        l, truth, output, l.biases, n, box_index, i, j, l.w, l.h, l.net_w, l.net_h,
        delta, 2 - truth.w * truth.h, stride, l.iou_normalizer * cm, 1,
    )  # fmt: skip
    obj_index = entry_gaussian_index(l, b, loc, 8)
    delta[obj_index] = cm * l.obj_normalizer * (1 - output[obj_index])
    class_index = entry_gaussian_index(l, b, loc, 9)
    delta_gaussian_yolo_class(
        output, delta, class_index, class_id, l.classes, stride,
        l.label_smooth_eps, l.classes_multipliers, l.cls_normalizer,
    )  # fmt: skip
