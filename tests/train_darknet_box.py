"""An independent transcription of darknet's box.c (box_iou .. box_ciou, dx_box_iou) in plain Python,
for the loss tests. Test reference only: it never calls netcfg."""

from __future__ import annotations

import math


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
    I = Iw * Ih  # noqa: E741  (box.c names it I)
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
