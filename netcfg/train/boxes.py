"""Box overlaps and darknet's IoU-loss gradients (box.c), on (..., 4) tensors of x, y, w, h centre boxes.

`iou_gradient` is darknet's `dx_box_iou`: the gradient darknet uses for `iou_loss=iou|giou|diou|ciou`,
in the parameters x, y, w, h. It is darknet's formula, not autograd's: darknet's DIoU and CIoU terms
are approximations of the gradient of their penalties, and its w, h columns are not halved.
"""

from __future__ import annotations

import math

import torch


def _edges(b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(top, bottom, left, right) of x, y, w, h boxes, as darknet's to_tblr."""
    x, y, w, h = b.unbind(-1)
    return y - h / 2, y + h / 2, x - w / 2, x + w / 2


def _enclosing(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Width and height of the smallest box holding both (darknet's box_c)."""
    at, ab, al, ar = _edges(a)
    bt, bb, bl, br = _edges(b)
    return torch.maximum(ar, br) - torch.minimum(al, bl), torch.maximum(ab, bb) - torch.minimum(at, bt)


def _intersection_union(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Darknet's box_intersection (0 when either overlap is negative) and box_union."""
    at, ab, al, ar = _edges(a)
    bt, bb, bl, br = _edges(b)
    w = torch.minimum(ar, br) - torch.maximum(al, bl)
    h = torch.minimum(ab, bb) - torch.maximum(at, bt)
    inter = torch.where((w < 0) | (h < 0), torch.zeros_like(w), w * h)
    return inter, a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union, 0 when either is 0 (darknet's box_iou)."""
    inter, union = _intersection_union(a, b)
    empty = (inter == 0) | (union == 0)
    return torch.where(empty, torch.zeros_like(inter), inter / torch.where(empty, torch.ones_like(union), union))


def _aspect_term(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """CIoU's v = 4/π²·(atan(w_b/h_b) − atan(w_a/h_a))²."""
    return 4 / math.pi**2 * (torch.atan(b[..., 2] / b[..., 3]) - torch.atan(a[..., 2] / a[..., 3])) ** 2


def box_iou_kind(a: torch.Tensor, b: torch.Tensor, kind: str) -> torch.Tensor:
    """IoU, GIoU, DIoU (darknet's: the distance term raised to 0.6) or CIoU, as box.c computes them."""
    iou = box_iou(a, b)
    if kind in ("iou", "mse"):
        return iou
    cw, ch = _enclosing(a, b)
    if kind == "giou":
        c = cw * ch
        _, union = _intersection_union(a, b)
        return torch.where(c == 0, iou, iou - (c - union) / torch.where(c == 0, torch.ones_like(c), c))
    c = cw * cw + ch * ch
    safe = torch.where(c == 0, torch.ones_like(c), c)
    d = ((a[..., 0] - b[..., 0]) ** 2 + (a[..., 1] - b[..., 1]) ** 2) / safe
    if kind == "diou":
        return torch.where(c == 0, iou, iou - d**0.6)
    v = _aspect_term(a, b)
    alpha = v / (1 - iou + v + 0.000001)
    return torch.where(c == 0, iou, iou - (d + alpha * v))


def _ratio_gradient(num, den, d_num, d_den):
    """d(num/den) from the parts, 0 where den ≤ 0 (darknet's `if (U > 0)`)."""
    ok = den > 0
    safe = torch.where(ok, den, torch.ones_like(den))
    return [
        torch.where(ok, (den * dn - num * dd) / (safe * safe), torch.zeros_like(den)) for dn, dd in zip(d_num, d_den)
    ]


def iou_gradient(pred: torch.Tensor, truth: torch.Tensor, kind: str) -> torch.Tensor:
    """Darknet's dx_box_iou: (..., 4) gradient of the IoU kind in the prediction's x, y, w, h."""
    raw_t, raw_b, raw_l, raw_r = _edges(pred)
    pt, pb = torch.minimum(raw_t, raw_b), torch.maximum(raw_t, raw_b)
    pl, pr = torch.minimum(raw_l, raw_r), torch.maximum(raw_l, raw_r)
    tt, tb, tl, tr = _edges(truth)
    zero = torch.zeros_like(pt)
    area = (pb - pt) * (pr - pl)
    ih = torch.minimum(pb, tb) - torch.maximum(pt, tt)
    iw = torch.minimum(pr, tr) - torch.maximum(pl, tl)
    inter = iw * ih
    union = area + (tb - tt) * (tr - tl) - inter
    d_area = (-(pr - pl), pr - pl, -(pb - pt), pb - pt)
    d_inter = (
        torch.where(pt > tt, -iw, zero),
        torch.where(pb < tb, iw, zero),
        torch.where(pl > tl, -ih, zero),
        torch.where(pr < tr, ih, zero),
    )
    d_union = [a - i for a, i in zip(d_area, d_inter)]
    p_t, p_b, p_l, p_r = _ratio_gradient(inter, union, d_inter, d_union)
    vertical, horizontal = raw_t < raw_b, raw_l < raw_r
    p_t = torch.where(vertical, p_t, p_b)
    p_b = torch.where(vertical, p_b, p_t)
    p_l = torch.where(horizontal, p_l, p_r)
    p_r = torch.where(horizontal, p_r, p_l)
    if kind == "giou":
        p_t, p_b, p_l, p_r = _giou_terms(
            (p_t, p_b, p_l, p_r), (pt, pb, pl, pr), (tt, tb, tl, tr), union, d_union, iw, ih
        )
    dx, dy, dw, dh = p_l + p_r, p_t + p_b, p_r - p_l, p_b - p_t
    if kind in ("diou", "ciou"):
        dx, dy, dw, dh = _distance_terms(
            (dx, dy, dw, dh), pred, truth, (pt, pb, pl, pr), (tt, tb, tl, tr), inter, union, iw, ih, kind
        )
    return torch.stack((dx, dy, dw, dh), dim=-1)


def _giou_terms(p, pred_edges, truth_edges, union, d_union, iw, ih):
    """GIoU's enclosing-box term added to the IoU gradient, or alone where the boxes do not overlap
    (there a zero-area enclosure divides by zero, as in darknet, and the caller zeroes the result)."""
    pt, pb, pl, pr = pred_edges
    tt, tb, tl, tr = truth_edges
    zero = torch.zeros_like(pt)
    cw = torch.maximum(pr, tr) - torch.minimum(pl, tl)
    ch = torch.maximum(pb, tb) - torch.minimum(pt, tt)
    d_c = (
        torch.where(pt < tt, -cw, zero),
        torch.where(pb > tb, cw, zero),
        torch.where(pl < tl, -ch, zero),
        torch.where(pr > tr, ch, zero),
    )
    c = cw * ch
    apart = (iw <= 0) | (ih <= 0)
    out = []
    for value, du, dc in zip(p, d_union, d_c):
        term = (c * du - union * dc) / (c * c)
        out.append(torch.where(apart, term, torch.where(c > 0, value + term, value)))
    return out


def _distance_terms(d, pred, truth, pred_edges, truth_edges, inter, union, iw, ih, kind):
    """DIoU's centre-distance term (and CIoU's aspect term) added to the IoU gradient, or alone where
    the boxes do not overlap, as darknet's dx_box_iou writes them."""
    pt, pb, pl, pr = pred_edges
    tt, tb, tl, tr = truth_edges
    raw_t, raw_b, raw_l, raw_r = _edges(pred)
    cw = torch.maximum(raw_r, tr) - torch.minimum(raw_l, tl)
    ch = torch.maximum(raw_b, tb) - torch.minimum(raw_t, tt)
    c = cw * cw + ch * ch
    s = (pred[..., 0] - truth[..., 0]) ** 2 + (pred[..., 1] - truth[..., 1]) ** 2
    one, zero = torch.ones_like(c), torch.zeros_like(c)
    dcw_dx = torch.where(pr > tr, one, zero) - torch.where(pl < tl, one, zero)
    dch_dy = torch.where(pb > tb, one, zero) - torch.where(pt < tt, one, zero)
    dcw_dw = torch.where(pr > tr, one / 2, zero) + torch.where(pl < tl, one / 2, zero)
    dch_dh = torch.where(pb > tb, one / 2, zero) + torch.where(pt < tt, one / 2, zero)
    terms = [
        (2 * (truth[..., 0] - pred[..., 0]) * c - 2 * cw * dcw_dx * s) / (c * c),
        (2 * (truth[..., 1] - pred[..., 1]) * c - 2 * ch * dch_dy * s) / (c * c),
        2 * cw * dcw_dw * s / (c * c),
        2 * ch * dch_dh * s / (c * c),
    ]
    if kind == "ciou":
        angle = torch.atan(truth[..., 2] / truth[..., 3]) - torch.atan(pred[..., 2] / pred[..., 3])
        v = 4 / math.pi**2 * angle * angle
        alpha = v / (1 - inter / union + v + 0.000001)
        terms[2] = terms[2] + alpha * 8 / math.pi**2 * angle * pred[..., 3]
        terms[3] = terms[3] - alpha * 8 / math.pi**2 * angle * pred[..., 2]
    apart = (iw <= 0) | (ih <= 0)
    return [torch.where(apart, t, torch.where(c > 0, value + t, value)) for value, t in zip(d, terms)]
