# ruff: noqa: E741  (darknet names its layer `l`)
"""An independent transcription of darknet's [yolo] training pass (yolo_layer.c forward_yolo_layer,
process_batch, delta_yolo_box, delta_yolo_class; box.c box_iou .. box_ciou and dx_box_iou), in plain
Python loops over darknet's flat arrays. Test reference only: it never calls netcfg."""

from __future__ import annotations

import math

FLT_MAX = 3.4028234663852886e38


class Box:
    def __init__(self, x, y, w, h):
        self.x, self.y, self.w, self.h = x, y, w, h


def overlap(x1, w1, x2, w2):
    left = max(x1 - w1 / 2, x2 - w2 / 2)
    right = min(x1 + w1 / 2, x2 + w2 / 2)
    return right - left


def box_intersection(a, b):
    w = overlap(a.x, a.w, b.x, b.w)
    h = overlap(a.y, a.h, b.y, b.h)
    if w < 0 or h < 0:
        return 0.0
    return w * h


def box_union(a, b):
    return a.w * a.h + b.w * b.h - box_intersection(a, b)


def box_iou(a, b):
    i = box_intersection(a, b)
    u = box_union(a, b)
    if i == 0 or u == 0:
        return 0.0
    return i / u


def box_c(a, b):
    top = min(a.y - a.h / 2, b.y - b.h / 2)
    bot = max(a.y + a.h / 2, b.y + b.h / 2)
    left = min(a.x - a.w / 2, b.x - b.w / 2)
    right = max(a.x + a.w / 2, b.x + b.w / 2)
    return top, bot, left, right


def box_giou(a, b):
    top, bot, left, right = box_c(a, b)
    c = (right - left) * (bot - top)
    iou = box_iou(a, b)
    if c == 0:
        return iou
    return iou - (c - box_union(a, b)) / c


def box_diou(a, b):
    top, bot, left, right = box_c(a, b)
    c = (right - left) ** 2 + (bot - top) ** 2
    iou = box_iou(a, b)
    if c == 0:
        return iou
    d = (a.x - b.x) ** 2 + (a.y - b.y) ** 2
    return iou - (d / c) ** 0.6


def box_ciou(a, b):
    top, bot, left, right = box_c(a, b)
    c = (right - left) ** 2 + (bot - top) ** 2
    iou = box_iou(a, b)
    if c == 0:
        return iou
    d = ((a.x - b.x) ** 2 + (a.y - b.y) ** 2) / c
    ar = 4 / (math.pi * math.pi) * (math.atan(b.w / b.h) - math.atan(a.w / a.h)) ** 2
    alpha = ar / (1 - iou + ar + 0.000001)
    return iou - (d + alpha * ar)


def box_iou_kind(a, b, kind):
    return {"iou": box_iou, "giou": box_giou, "diou": box_diou, "ciou": box_ciou}.get(kind, box_iou)(a, b)


def _div(a, b):
    """C float division: ±inf or nan instead of an exception."""
    if b == 0:
        return math.nan if a == 0 else math.copysign(math.inf, a)
    return a / b


def dx_box_iou(pred, truth, iou_loss):
    pt0, pb0 = pred.y - pred.h / 2, pred.y + pred.h / 2
    pl0, pr0 = pred.x - pred.w / 2, pred.x + pred.w / 2
    pred_t, pred_b, pred_l, pred_r = min(pt0, pb0), max(pt0, pb0), min(pl0, pr0), max(pl0, pr0)
    tt, tb = truth.y - truth.h / 2, truth.y + truth.h / 2
    tl, tr = truth.x - truth.w / 2, truth.x + truth.w / 2
    X = (pred_b - pred_t) * (pred_r - pred_l)
    Xhat = (tb - tt) * (tr - tl)
    Ih = min(pred_b, tb) - max(pred_t, tt)
    Iw = min(pred_r, tr) - max(pred_l, tl)
    I = Iw * Ih
    U = X + Xhat - I
    S = (pred.x - truth.x) ** 2 + (pred.y - truth.y) ** 2
    giou_Cw = max(pred_r, tr) - min(pred_l, tl)
    giou_Ch = max(pred_b, tb) - min(pred_t, tt)
    giou_C = giou_Cw * giou_Ch
    dX_wrt_t, dX_wrt_b = -(pred_r - pred_l), pred_r - pred_l
    dX_wrt_l, dX_wrt_r = -(pred_b - pred_t), pred_b - pred_t
    dI_wrt_t = -Iw if pred_t > tt else 0
    dI_wrt_b = Iw if pred_b < tb else 0
    dI_wrt_l = -Ih if pred_l > tl else 0
    dI_wrt_r = Ih if pred_r < tr else 0
    dU_wrt_t, dU_wrt_b = dX_wrt_t - dI_wrt_t, dX_wrt_b - dI_wrt_b
    dU_wrt_l, dU_wrt_r = dX_wrt_l - dI_wrt_l, dX_wrt_r - dI_wrt_r
    dC_wrt_t = -giou_Cw if pred_t < tt else 0
    dC_wrt_b = giou_Cw if pred_b > tb else 0
    dC_wrt_l = -giou_Ch if pred_l < tl else 0
    dC_wrt_r = giou_Ch if pred_r > tr else 0
    p_dt = p_db = p_dl = p_dr = 0
    if U > 0:
        p_dt = ((U * dI_wrt_t) - (I * dU_wrt_t)) / (U * U)
        p_db = ((U * dI_wrt_b) - (I * dU_wrt_b)) / (U * U)
        p_dl = ((U * dI_wrt_l) - (I * dU_wrt_l)) / (U * U)
        p_dr = ((U * dI_wrt_r) - (I * dU_wrt_r)) / (U * U)
    p_dt = p_dt if pt0 < pb0 else p_db
    p_db = p_db if pt0 < pb0 else p_dt
    p_dl = p_dl if pl0 < pr0 else p_dr
    p_dr = p_dr if pl0 < pr0 else p_dl
    if iou_loss == "giou":
        if giou_C > 0:
            p_dt += ((giou_C * dU_wrt_t) - (U * dC_wrt_t)) / (giou_C * giou_C)
            p_db += ((giou_C * dU_wrt_b) - (U * dC_wrt_b)) / (giou_C * giou_C)
            p_dl += ((giou_C * dU_wrt_l) - (U * dC_wrt_l)) / (giou_C * giou_C)
            p_dr += ((giou_C * dU_wrt_r) - (U * dC_wrt_r)) / (giou_C * giou_C)
        if Iw <= 0 or Ih <= 0:
            p_dt = _div((giou_C * dU_wrt_t) - (U * dC_wrt_t), giou_C * giou_C)
            p_db = _div((giou_C * dU_wrt_b) - (U * dC_wrt_b), giou_C * giou_C)
            p_dl = _div((giou_C * dU_wrt_l) - (U * dC_wrt_l), giou_C * giou_C)
            p_dr = _div((giou_C * dU_wrt_r) - (U * dC_wrt_r), giou_C * giou_C)
    Ct = min(pred.y - pred.h / 2, truth.y - truth.h / 2)
    Cb = max(pred.y + pred.h / 2, truth.y + truth.h / 2)
    Cl = min(pred.x - pred.w / 2, truth.x - truth.w / 2)
    Cr = max(pred.x + pred.w / 2, truth.x + truth.w / 2)
    Cw, Ch = Cr - Cl, Cb - Ct
    C = Cw * Cw + Ch * Ch
    dCt_dy = 1 if pred_t < tt else 0
    dCt_dh = -0.5 if pred_t < tt else 0
    dCb_dy = 1 if pred_b > tb else 0
    dCb_dh = 0.5 if pred_b > tb else 0
    dCl_dx = 1 if pred_l < tl else 0
    dCl_dw = -0.5 if pred_l < tl else 0
    dCr_dx = 1 if pred_r > tr else 0
    dCr_dw = 0.5 if pred_r > tr else 0
    dCw_dx, dCw_dy, dCw_dw, dCw_dh = dCr_dx - dCl_dx, 0, dCr_dw - dCl_dw, 0
    dCh_dx, dCh_dy, dCh_dw, dCh_dh = 0, dCb_dy - dCt_dy, 0, dCb_dh - dCt_dh
    p_dx, p_dy = p_dl + p_dr, p_dt + p_db
    p_dw, p_dh = p_dr - p_dl, p_db - p_dt
    if iou_loss in ("diou", "ciou"):
        ar_w = ar_h = 0
        if iou_loss == "ciou":
            ar_gt, ar_pred = truth.w / truth.h, pred.w / pred.h
            ar_loss = 4 / (math.pi * math.pi) * (math.atan(ar_gt) - math.atan(ar_pred)) ** 2
            alpha = ar_loss / (1 - _div(I, U) + ar_loss + 0.000001)
            ar_w = alpha * 8 / (math.pi * math.pi) * (math.atan(ar_gt) - math.atan(ar_pred)) * pred.h
            ar_h = alpha * -8 / (math.pi * math.pi) * (math.atan(ar_gt) - math.atan(ar_pred)) * pred.w
        tx = _div(2 * (truth.x - pred.x) * C - (2 * Cw * dCw_dx + 2 * Ch * dCh_dx) * S, C * C)
        ty = _div(2 * (truth.y - pred.y) * C - (2 * Cw * dCw_dy + 2 * Ch * dCh_dy) * S, C * C)
        tw = _div((2 * Cw * dCw_dw + 2 * Ch * dCh_dw) * S, C * C) + ar_w
        th = _div((2 * Cw * dCw_dh + 2 * Ch * dCh_dh) * S, C * C) + ar_h
        if C > 0:
            p_dx, p_dy, p_dw, p_dh = p_dx + tx, p_dy + ty, p_dw + tw, p_dh + th
        if Iw <= 0 or Ih <= 0:
            p_dx, p_dy, p_dw, p_dh = tx, ty, tw, th
    return p_dx, p_dy, p_dw, p_dh


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
