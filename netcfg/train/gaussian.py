"""`[Gaussian_yolo]`'s training deltas, as darknet's forward_gaussian_yolo_layer writes `l.delta`
(gaussian_yolo_layer.c).

Each box coordinate is a Gaussian: a mean μ (x, y, w, h as `[yolo]`'s) and an uncertainty σ. Truths
are assigned to anchors as `[yolo]`'s (`assigned_anchors`); the box delta is the gradient of the
Gaussian's negative log-likelihood of the target, scaled by 2 − w·h, or with `iou_loss` darknet's IoU
gradient for the means (the σs keep the likelihood's, weighted by `uc_normalizer`). darknet's code
differs from `[yolo]`'s in small ways kept here: `objectness_smooth` pulls ignored predictions
towards IoU² and their best truth's class, a class is "already learnt" when class 0's delta is set,
every entry's 8 box deltas are divided by its classes pushed up, and every box delta is NaN-cleaned
and clipped by `max_delta`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from .boxes import box_iou, box_iou_kind, iou_gradient
from .yolo import YoloHead, YoloStats, assigned_anchors, class_multiplier, head_inputs, valid_truths

#: darknet's constants in delta_gaussian_yolo_box: σ's offset in the density and the density's guard.
SIGMA_CONST = 0.3
EPSILON = 1e-9
#: Where `yolo_point` puts the predicted point, in box sizes from the centre.
_SHIFT = {"center": 0.0, "left_top": 0.5, "right_bottom": -0.5}


@dataclass(frozen=True)
class GaussianHead(YoloHead):
    """What the loss of one `[Gaussian_yolo]` head reads: `[yolo]`'s keys but `focal_loss` and
    `new_coords` (darknet reads neither here), `uc_normalizer` and `yolo_point`."""

    uc_normalizer: float = 1.0
    yolo_point: str = "center"
    section_keys: ClassVar[tuple[str, ...]] = (
        *(key for key in YoloHead.section_keys if key not in ("focal_loss", "new_coords")),
        "uc_normalizer",
        "yolo_point",
    )

    @property
    def shift(self) -> float:
        """The predicted point's offset from the box centre, in box sizes (+½ left_top, −½ right_bottom)."""
        return _SHIFT[self.yolo_point]


def _pred_boxes(p: torch.Tensor, head: GaussianHead, net: tuple[int, int]) -> torch.Tensor:
    """(B, A, H, W, 4) boxes from the means, in input fractions (darknet's get_gaussian_yolo_box)."""
    b, a, _, h, w = p.shape
    rows, cols = torch.meshgrid(
        torch.arange(h, dtype=p.dtype, device=p.device), torch.arange(w, dtype=p.dtype, device=p.device), indexing="ij"
    )
    anchors = torch.tensor([head.anchors[m] for m in head.mask], dtype=p.dtype, device=p.device).reshape(1, a, 1, 1, 2)
    net_size = torch.tensor([net[1], net[0]], dtype=p.dtype, device=p.device)
    wh = torch.exp(p[:, :, 4:7:2].permute(0, 1, 3, 4, 2)) * anchors / net_size
    x = (cols + p[:, :, 0]) / w + head.shift * wh[..., 0]
    y = (rows + p[:, :, 2]) / h + head.shift * wh[..., 1]
    return torch.stack((x, y, wh[..., 0], wh[..., 1]), dim=-1)


def _class_delta(out: torch.Tensor, delta: torch.Tensor, class_id: torch.Tensor, head: GaussianHead) -> torch.Tensor:
    """darknet's delta_gaussian_yolo_class on K entries: (K, C) class outputs and deltas → the new deltas.
    Unlike `[yolo]`'s, an entry already learning a class is told by class 0's delta; no focal loss."""
    k = torch.arange(out.shape[0], device=out.device)
    eps = head.label_smooth_eps
    onehot = torch.nn.functional.one_hot(class_id, head.classes).to(out.dtype)
    target = onehot * (1 - eps) + 0.5 * eps
    multiplier = class_multiplier(class_id, head, out)
    first = target - out
    if head.multipliers is not None:
        first[k, class_id] = first[k, class_id] * (multiplier * head.cls_normalizer)
    repeat = delta.clone()
    repeat[k, class_id] = (target[k, class_id] - out[k, class_id]) * multiplier
    return torch.where((delta[:, 0] != 0)[:, None], repeat, first)


def _likelihood_deltas(d: torch.Tensor, sigma: torch.Tensor, scale: torch.Tensor):
    """The deltas of the means and σs from the Gaussian likelihood of the targets (d = target − μ),
    as darknet writes them (its density cancels out but for the ε guard)."""
    z = d / sigma
    density = torch.exp(z * z * (-1 / 2)) / (math.sqrt(math.pi * 2) * (sigma + SIGMA_CONST))
    part = 0.5 / (density + EPSILON) * density * scale
    return part * z * (1 / sigma), part * (z * z / sigma - 1 / (sigma + SIGMA_CONST))


def _iou_deltas(pred: torch.Tensor, truth: torch.Tensor, mu: torch.Tensor, head: GaussianHead) -> torch.Tensor:
    """The means' deltas with `iou_loss`: darknet's IoU gradient, moved to the predicted point and through
    exp for w, h."""
    pred = torch.cat((pred[:, :2], torch.where(pred[:, 2:] == 0, torch.ones_like(pred[:, 2:]), pred[:, 2:])), dim=1)
    grad = iou_gradient(pred, truth, head.iou_loss)
    return torch.cat((grad[:, :2] - head.shift * grad[:, 2:], grad[:, 2:] * torch.exp(mu[:, 2:])), dim=1)


def _box_delta(
    out: torch.Tensor,
    truth: torch.Tensor,
    anchor: torch.Tensor,
    cell: torch.Tensor,
    grid: tuple[int, int],
    net: tuple[int, int],
    normalizer: torch.Tensor,
    head: GaussianHead,
) -> tuple[torch.Tensor, torch.Tensor]:
    """darknet's delta_gaussian_yolo_box on K entries: the (K, 8) deltas to add (μx, σx, μy, ... order) and
    the (K,) IoUs (GIoUs with `iou_loss`) it reports. `out` holds the entries' 8 box outputs, `anchor`
    their anchors in pixels, `cell` (col, row)."""
    h, w = grid
    net_size = torch.tensor([net[1], net[0]], dtype=out.dtype, device=out.device)
    grid_size = torch.tensor([w, h], dtype=out.dtype, device=out.device)
    mu, sigma = out[:, 0:8:2], out[:, 1:8:2]
    size = torch.exp(mu[:, 2:]) * anchor / net_size
    pred = torch.cat(((cell.to(out.dtype) + mu[:, :2]) / grid_size + head.shift * size, size), dim=1)
    iou = box_iou_kind(pred, truth, "iou" if head.iou_loss == "mse" else "giou")
    target_xy = (truth[:, :2] - head.shift * truth[:, 2:]) * grid_size - cell.to(out.dtype)
    target = torch.cat((target_xy, torch.log(truth[:, 2:] * net_size / anchor)), dim=1)
    scale = (2 - truth[:, 2] * truth[:, 3])[:, None]
    mu_delta, sigma_delta = _likelihood_deltas(target - mu, sigma, scale)
    if head.iou_loss != "mse":
        mu_delta = _iou_deltas(pred, truth, mu, head)
    deltas = torch.stack((mu_delta * normalizer[:, None], sigma_delta * head.uc_normalizer), dim=2).reshape(-1, 8)
    deltas = torch.where(torch.isfinite(deltas), deltas, torch.zeros_like(deltas))
    if head.max_delta is not None:
        deltas = deltas.clamp(-head.max_delta, head.max_delta)
    return deltas, iou


def gaussian_delta(
    output: torch.Tensor, targets: torch.Tensor, head: GaussianHead, net: tuple[int, int]
) -> tuple[torch.Tensor, YoloStats]:
    """darknet's `l.delta` for one head: `output` (B, A·(9+C), H, W) is the head's `l.output`, `targets`
    (B, T, 5) rows `class x y w h` (input fractions; padding rows all 0 with class −1), `net` the input
    (height, width). Returns the delta in `output`'s shape and the head's statistics."""
    p, targets = head_inputs(output, targets, head, 9)
    _, usable = valid_truths(targets, head.classes)
    delta = _background(p, targets, _background_truths(targets, head.classes), head, net)
    stats = YoloStats()
    for t in range(targets.shape[1]):
        _assign(p, delta, targets[:, t], usable[:, t], head, net, stats)
    _average_boxes(delta)
    return delta.reshape(output.shape), stats


def _background_truths(targets: torch.Tensor, classes: int) -> torch.Tensor:
    """(B, T) rows darknet's first pass reads: it skips a class the head lacks before looking for the
    x = 0 that ends the list, so such a row never ends it (the assignment's list, `valid_truths`, does)."""
    cls = targets[..., 0]
    ends = (targets[..., 1] == 0) & (cls < classes)
    read = torch.cumprod((~ends).to(torch.int8), dim=1).bool()
    return read & (cls >= 0) & (cls < classes)


def _background(p: torch.Tensor, targets: torch.Tensor, usable: torch.Tensor, head: GaussianHead, net) -> torch.Tensor:
    """The first pass over every prediction: objectness towards 0 unless its best IoU with a truth passes
    `ignore_thresh` (and a class scores over 0.25); over `truth_thresh`, towards that truth."""
    pred = _pred_boxes(p, head, net)
    ious = box_iou(pred[..., None, :], targets[:, None, None, None, :, 1:])
    ious = torch.where(usable[:, None, None, None, :], ious, torch.zeros_like(ious))
    best_iou, best_t = ious.max(dim=-1)
    matched = torch.where((p[:, :, 9:] > 0.25).any(dim=2), best_iou, torch.zeros_like(best_iou))
    delta = torch.zeros_like(p)
    delta[:, :, 8] = head.obj_normalizer * (0 - p[:, :, 8])
    ignored = matched > head.ignore_thresh
    if head.objectness_smooth:
        _smooth_ignored(p, delta, targets, ignored.nonzero(as_tuple=True), matched, best_t, head)
    else:
        delta[:, :, 8] = torch.where(ignored, torch.zeros_like(delta[:, :, 8]), delta[:, :, 8])
    close = best_iou > head.truth_thresh
    if close.any():
        _towards_best_truth(p, delta, targets, close.nonzero(as_tuple=True), best_iou, best_t, head, net)
    return delta


def _smooth_ignored(p, delta, targets, entries, matched, best_t, head: GaussianHead) -> None:
    """With `objectness_smooth`, ignored predictions learn objectness IoU² and their best truth's class
    (in place)."""
    bi, ai, ji, ii = entries
    iou = matched[bi, ai, ji, ii]
    delta[bi, ai, 8, ji, ii] = head.obj_normalizer * (iou * iou - p[bi, ai, 8, ji, ii])
    class_id = targets[bi, best_t[bi, ai, ji, ii], 0].long()
    cls_out = p[bi, ai, 9:, ji, ii]
    delta[bi, ai, 9:, ji, ii] = _class_delta(cls_out, torch.zeros_like(cls_out), class_id, head)


def _towards_best_truth(p, delta, targets, entries, best_iou, best_t, head: GaussianHead, net) -> None:
    """Predictions over `truth_thresh` learn their best truth as if assigned to it (in place)."""
    bi, ai, ji, ii = entries
    truth = targets[bi, best_t[bi, ai, ji, ii]]
    class_id = truth[:, 0].long()
    iou = best_iou[bi, ai, ji, ii]
    goal = iou * iou if head.objectness_smooth else torch.ones_like(iou)
    delta[bi, ai, 8, ji, ii] = head.obj_normalizer * (goal - p[bi, ai, 8, ji, ii])
    cls_out = p[bi, ai, 9:, ji, ii]
    cls = _class_delta(cls_out, delta[bi, ai, 9:, ji, ii], class_id, head)
    multiplier = class_multiplier(class_id, head, p)
    if head.objectness_smooth:
        k = torch.arange(len(bi), device=p.device)
        cls[k, class_id] = multiplier * (goal - cls_out[k, class_id])
    delta[bi, ai, 9:, ji, ii] = cls
    anchor = torch.tensor(head.anchors, dtype=p.dtype, device=p.device)[torch.tensor(head.mask, device=p.device)[ai]]
    box, _ = _box_delta(
        p[bi, ai, :8, ji, ii],
        truth[:, 1:],
        anchor,
        torch.stack((ii, ji), dim=1),
        p.shape[-2:],
        net,
        head.iou_normalizer * multiplier,
        head,
    )
    delta[bi, ai, :8, ji, ii] += box


def _cell(truth: torch.Tensor, head: GaussianHead, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The (col, row) a truth is learnt in: the cell of its centre, or of the corner `yolo_point` names."""
    h, w = grid
    point = truth[:, 1:3] - head.shift * truth[:, 3:5]
    return (point[:, 0] * w).long().clamp(0, w - 1), (point[:, 1] * h).long().clamp(0, h - 1)


def _assign(p, delta, truth, usable, head: GaussianHead, net, stats: YoloStats) -> None:
    """One truth of every image: the anchors `assigned_anchors` picks, in the truth's cell, learn it (in
    place, in darknet's order)."""
    bi, ni, ai = assigned_anchors(truth, usable, head, net)
    if not len(bi):
        return
    t = truth[bi]
    ii, ji = _cell(t, head, p.shape[-2:])
    class_id = t[:, 0].long()
    multiplier = class_multiplier(class_id, head, p)
    box, iou = _box_delta(
        p[bi, ai, :8, ji, ii],
        t[:, 1:],
        torch.tensor(head.anchors, dtype=p.dtype, device=p.device)[ni],
        torch.stack((ii, ji), dim=1),
        p.shape[-2:],
        net,
        head.iou_normalizer * multiplier,
        head,
    )
    delta[bi, ai, :8, ji, ii] += box
    delta[bi, ai, 8, ji, ii] = multiplier * head.obj_normalizer * (1 - p[bi, ai, 8, ji, ii])
    delta[bi, ai, 9:, ji, ii] = _class_delta(p[bi, ai, 9:, ji, ii], delta[bi, ai, 9:, ji, ii], class_id, head)
    stats.count += len(bi)
    stats.iou_sum += float(iou.sum())


def _average_boxes(delta: torch.Tensor) -> None:
    """darknet divides every entry's 8 box deltas by the number of its classes pushed up, when any (in
    place): a prediction assigned truths of several classes averages their boxes."""
    up = (delta[:, :, 9:] > 0).sum(dim=2, keepdim=True)
    delta[:, :, :8] = torch.where(up > 0, delta[:, :, :8] / up.clamp(min=1), delta[:, :, :8])
