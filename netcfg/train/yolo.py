"""`[yolo]`'s training deltas, as darknet's forward_yolo_layer writes `l.delta` (yolo_layer.c).

darknet's delta is the negative gradient of its cost at the layer's input: every prediction's
objectness is pushed to 0 unless it overlaps a truth by more than `ignore_thresh`; each truth is
assigned, in its cell, to the anchor whose shape fits it best (and to every other anchor of this
head over `iou_thresh`), which is pushed towards the box (MSE of the box parameters scaled by
2 − w·h, or darknet's IoU-kind gradient), objectness 1 and its class. The deltas are computed here
with tensor operations in darknet's order (truths one after another, so a cell two truths share
keeps darknet's accumulations and overwrites).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from .boxes import box_iou, box_iou_kind, iou_gradient

#: Focal loss's α, fixed in darknet's delta_yolo_class.
FOCAL_ALPHA = 0.5


@dataclass(frozen=True)
class YoloHead:
    """What the loss of one `[yolo]` head reads: its anchors (pixels; the best-anchor search runs over
    the first `num`, darknet's `l.total`), its mask and its keys."""

    anchors: tuple[tuple[float, float], ...]
    num: int
    mask: tuple[int, ...]
    classes: int
    ignore_thresh: float = 0.5
    truth_thresh: float = 1.0
    iou_thresh: float = 1.0
    iou_loss: str = "mse"
    iou_thresh_kind: str = "iou"
    iou_normalizer: float = 0.75
    cls_normalizer: float = 1.0
    obj_normalizer: float = 1.0
    delta_normalizer: float = 1.0
    label_smooth_eps: float = 0.0
    max_delta: float | None = None
    multipliers: tuple[float, ...] | None = None
    focal_loss: bool = False
    objectness_smooth: bool = False
    new_coords: bool = False
    max_boxes: int = 200
    #: The section's keys copied as they are.
    section_keys: ClassVar[tuple[str, ...]] = (
        "classes ignore_thresh truth_thresh iou_thresh iou_loss iou_thresh_kind iou_normalizer cls_normalizer "
        "obj_normalizer delta_normalizer label_smooth_eps max_delta focal_loss objectness_smooth new_coords max_boxes"
    ).split()

    @classmethod
    def from_section(cls, section) -> YoloHead:
        """The head a `[yolo]` section describes (anchors past those listed are darknet's 0.5)."""
        pairs = max(section.num, len(section.anchors) // 2)
        values = (*section.anchors, *(0.5,) * max(0, 2 * pairs - len(section.anchors)))
        counters = section.counters_per_class
        multipliers = None
        if counters is not None:
            counts = [max(c, 1) for c in counters]
            cap = section.max_delta if section.max_delta is not None else float("inf")
            multipliers = tuple(min(max(counts) / c, cap) for c in counts)
        return cls(
            anchors=tuple((values[2 * i], values[2 * i + 1]) for i in range(pairs)),
            num=section.num,
            mask=section.used_mask,
            multipliers=multipliers,
            **{key: getattr(section, key) for key in cls.section_keys},
        )


def valid_truths(targets: torch.Tensor, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) masks: rows darknet reads (it stops at the first with x = 0) and, of those, rows with a
    class this head has (others are skipped, as darknet's `class_id >= l.classes` check)."""
    read = torch.cumprod((targets[..., 1] != 0).to(torch.int8), dim=1).bool()
    cls = targets[..., 0]
    return read, read & (cls >= 0) & (cls < classes)


def _pred_boxes(p: torch.Tensor, head: YoloHead, net: tuple[int, int]) -> torch.Tensor:
    """(B, A, H, W, 4) boxes from the head output, in input fractions (darknet's get_yolo_box)."""
    b, a, _, h, w = p.shape
    rows, cols = torch.meshgrid(
        torch.arange(h, dtype=p.dtype, device=p.device), torch.arange(w, dtype=p.dtype, device=p.device), indexing="ij"
    )
    anchors = torch.tensor([head.anchors[m] for m in head.mask], dtype=p.dtype, device=p.device).reshape(1, a, 1, 1, 2)
    size = _box_size(p[:, :, 2:4].permute(0, 1, 3, 4, 2), head.new_coords)
    wh = size * anchors / torch.tensor([net[1], net[0]], dtype=p.dtype, device=p.device)
    return torch.stack(((cols + p[:, :, 0]) / w, (rows + p[:, :, 1]) / h, wh[..., 0], wh[..., 1]), dim=-1)


def _box_size(twh: torch.Tensor, new_coords: bool) -> torch.Tensor:
    """Anchor multiples from the w, h outputs: exp(t), or 4·t² with `new_coords`."""
    return 4 * twh * twh if new_coords else torch.exp(twh)


def _class_delta(out: torch.Tensor, delta: torch.Tensor, class_id: torch.Tensor, head: YoloHead) -> torch.Tensor:
    """darknet's delta_yolo_class on K entries: (K, C) class outputs and deltas → the new deltas."""
    k = torch.arange(out.shape[0], device=out.device)
    eps = head.label_smooth_eps
    true_value = 1 - eps + 0.5 * eps if eps else 1.0
    multiplier = class_multiplier(class_id, head, out)
    again = delta[k, class_id] != 0
    repeat = delta.clone()
    value = true_value - out[k, class_id]
    repeat[k, class_id] = torch.where(torch.isfinite(value), value, repeat[k, class_id]) * multiplier
    onehot = torch.nn.functional.one_hot(class_id, head.classes).to(out.dtype)
    if head.focal_loss:
        pt = out[k, class_id] + 0.000000000000001
        grad = -(1 - pt) * (2 * pt * torch.log(pt) + pt - 1)
        first = (onehot - out) * (FOCAL_ALPHA * grad)[:, None]
    else:
        target = onehot * (1 - eps) + 0.5 * eps if eps else onehot
        first = torch.where(torch.isfinite(target - out), target - out, delta)
        if head.multipliers is not None:
            first[k, class_id] = first[k, class_id] * multiplier * head.cls_normalizer
    return torch.where(again[:, None], repeat, first)


def class_multiplier(class_id: torch.Tensor, head: YoloHead, like: torch.Tensor) -> torch.Tensor:
    """Per-entry class multipliers from `counters_per_class` (1 without them)."""
    if head.multipliers is None:
        return torch.ones(class_id.shape, dtype=like.dtype, device=like.device)
    return torch.tensor(head.multipliers, dtype=like.dtype, device=like.device)[class_id]


def _box_delta(
    out: torch.Tensor,
    truth: torch.Tensor,
    anchor: torch.Tensor,
    cell: torch.Tensor,
    grid: tuple[int, int],
    net: tuple[int, int],
    normalizer: torch.Tensor,
    head: YoloHead,
) -> tuple[torch.Tensor, torch.Tensor]:
    """darknet's delta_yolo_box on K entries: the (K, 4) deltas to add and the (K,) IoUs with the truth.

    `out` holds the entries' x, y, w, h outputs, `anchor` their anchors in pixels, `cell` (col, row)."""
    h, w = grid
    net_size = torch.tensor([net[1], net[0]], dtype=out.dtype, device=out.device)
    size = _box_size(out[:, 2:4], head.new_coords) * anchor / net_size
    centre = (cell.to(out.dtype) + out[:, :2]) / torch.tensor([w, h], dtype=out.dtype, device=out.device)
    pred = torch.cat((centre, size), dim=1)
    iou = box_iou(pred, truth)
    if head.iou_loss == "mse":
        target_xy = truth[:, :2] * torch.tensor([w, h], dtype=out.dtype, device=out.device) - cell.to(out.dtype)
        ratio = truth[:, 2:4] * net_size / anchor
        target_wh = torch.sqrt(ratio / 4) if head.new_coords else torch.log(ratio)
        scale = (2 - truth[:, 2] * truth[:, 3]) * normalizer
        return scale[:, None] * (torch.cat((target_xy, target_wh), dim=1) - out), iou
    pred = torch.cat((pred[:, :2], torch.where(pred[:, 2:] == 0, torch.ones_like(size), pred[:, 2:])), dim=1)
    grad = iou_gradient(pred, truth, head.iou_loss)
    if not head.new_coords:
        grad = grad * torch.cat((torch.ones_like(out[:, :2]), torch.exp(out[:, 2:4])), dim=1)
    grad = grad * normalizer[:, None]
    grad = torch.where(torch.isfinite(grad), grad, torch.zeros_like(grad))
    if head.max_delta is not None:
        grad = grad.clamp(-head.max_delta, head.max_delta)
    return grad, iou


@dataclass
class YoloStats:
    """What darknet prints per head: assigned truths (`count`) and their summed IoU."""

    count: int = 0
    iou_sum: float = 0.0


def head_inputs(
    output: torch.Tensor, targets: torch.Tensor, head: YoloHead, per_box: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The head's output as (B, anchors, per_box + classes, H, W), detached, and its truths cut to
    `max` boxes in that dtype (one empty row when there are none, so the loops see a truth axis)."""
    b, _, h, w = output.shape
    p = output.detach().reshape(b, len(head.mask), per_box + head.classes, h, w)
    targets = targets[:, : head.max_boxes].to(p.dtype)
    if not targets.shape[1]:
        targets = torch.zeros(b, 1, 5, dtype=p.dtype, device=p.device)
    return p, targets


def yolo_delta(
    output: torch.Tensor, targets: torch.Tensor, head: YoloHead, net: tuple[int, int]
) -> tuple[torch.Tensor, YoloStats]:
    """darknet's `l.delta` for one head: `output` (B, A·(5+C), H, W) is the head's `l.output`, `targets`
    (B, T, 5) rows `class x y w h` (input fractions; padding rows all 0 with class −1), `net` the input
    (height, width). Returns the delta in `output`'s shape and the head's statistics."""
    p, targets = head_inputs(output, targets, head, 5)
    read, usable = valid_truths(targets, head.classes)
    delta = _background(p, targets, usable, head, net)
    stats = YoloStats()
    for t in range(targets.shape[1]):
        _assign(p, delta, targets[:, t], usable[:, t], head, net, stats)
    if head.iou_thresh < 1:
        _average_boxes(delta, head)
    return delta.reshape(output.shape), stats


def _background(p: torch.Tensor, targets: torch.Tensor, usable: torch.Tensor, head: YoloHead, net) -> torch.Tensor:
    """The first pass over every prediction: objectness towards 0 unless its best IoU with a truth passes
    `ignore_thresh` (and a class scores over 0.25); over `truth_thresh`, towards that truth."""
    pred = _pred_boxes(p, head, net)
    ious = box_iou(pred[..., None, :], targets[:, None, None, None, :, 1:])
    ious = torch.where(usable[:, None, None, None, :], ious, torch.zeros_like(ious))
    best_iou, best_t = ious.max(dim=-1)
    matched = torch.where((p[:, :, 5:] > 0.25).any(dim=2), best_iou, torch.zeros_like(best_iou))
    obj = p[:, :, 4]
    delta = torch.zeros_like(p)
    background = head.obj_normalizer * (0 - obj)
    ignored = matched > head.ignore_thresh
    if head.objectness_smooth:
        smooth = torch.maximum(background, head.obj_normalizer * (matched - obj))
        delta[:, :, 4] = torch.where(ignored, smooth, background)
    else:
        delta[:, :, 4] = torch.where(ignored, torch.zeros_like(obj), background)
    close = best_iou > head.truth_thresh
    if close.any():
        _towards_best_truth(p, delta, targets, close, best_iou, best_t, head, net)
    return delta


def _towards_best_truth(p, delta, targets, close, best_iou, best_t, head: YoloHead, net) -> None:
    """Predictions over `truth_thresh` learn their best truth as if assigned to it (in place)."""
    bi, ai, ji, ii = close.nonzero(as_tuple=True)
    t = best_t[bi, ai, ji, ii]
    truth = targets[bi, t]
    class_id = truth[:, 0].long()
    obj = p[bi, ai, 4, ji, ii]
    square = best_iou[bi, ai, ji, ii] ** 2
    delta[bi, ai, 4, ji, ii] = head.obj_normalizer * ((square if head.objectness_smooth else 1) - obj)
    cls_out = p[bi, ai, 5:, ji, ii]
    cls = _class_delta(cls_out, torch.zeros_like(cls_out), class_id, head)
    k = torch.arange(len(bi), device=p.device)
    multiplier = class_multiplier(class_id, head, p)
    if head.objectness_smooth:
        cls[k, class_id] = multiplier * (square - cls_out[k, class_id])
    delta[bi, ai, 5:, ji, ii] = cls
    anchor = torch.tensor(head.anchors, dtype=p.dtype, device=p.device)[torch.tensor(head.mask, device=p.device)[ai]]
    cell = torch.stack((ii, ji), dim=1)
    box, _ = _box_delta(
        p[bi, ai, :4, ji, ii], truth[:, 1:], anchor, cell, p.shape[-2:], net, head.iou_normalizer * multiplier, head
    )
    delta[bi, ai, :4, ji, ii] += box


def assigned_anchors(
    truth: torch.Tensor, usable: torch.Tensor, head: YoloHead, net: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which anchors learn one truth of every image: the best-shaped of the first `num`, and every other
    over `iou_thresh`, if this head's mask has them. Returns the images, anchors and their mask slots."""
    net_size = torch.tensor([net[1], net[0]], dtype=truth.dtype, device=truth.device)
    anchors = torch.tensor(head.anchors[: head.num], dtype=truth.dtype, device=truth.device) / net_size
    shapes = torch.cat((torch.zeros_like(anchors), anchors), dim=1)
    shifted = torch.cat((torch.zeros_like(truth[:, 1:3]), truth[:, 3:5]), dim=1)
    shape_iou = box_iou(shapes[None], shifted[:, None])
    best_n = shape_iou.argmax(dim=1)
    in_mask = torch.zeros(head.num, dtype=torch.bool, device=truth.device)
    slot = torch.full((head.num,), -1, dtype=torch.long, device=truth.device)
    for position, n in reversed(list(enumerate(head.mask))):
        if n < head.num:
            in_mask[n], slot[n] = True, position
    chosen = torch.nn.functional.one_hot(best_n, head.num).bool()
    if head.iou_thresh < 1:
        chosen |= box_iou_kind(shapes[None], shifted[:, None], head.iou_thresh_kind) > head.iou_thresh
    chosen &= in_mask[None] & usable[:, None]
    bi, ni = chosen.nonzero(as_tuple=True)
    return bi, ni, slot[ni]


def _assign(p, delta, truth, usable, head: YoloHead, net, stats: YoloStats) -> None:
    """One truth of every image: the anchors `assigned_anchors` picks, in the truth's cell, learn it (in
    place, in darknet's order)."""
    h, w = p.shape[-2:]
    bi, ni, ai = assigned_anchors(truth, usable, head, net)
    if not len(bi):
        return
    t = truth[bi]
    ii = (t[:, 1] * w).long().clamp(0, w - 1)
    ji = (t[:, 2] * h).long().clamp(0, h - 1)
    class_id = t[:, 0].long()
    multiplier = class_multiplier(class_id, head, p)
    box, iou = _box_delta(
        p[bi, ai, :4, ji, ii],
        t[:, 1:],
        torch.tensor(head.anchors, dtype=p.dtype, device=p.device)[ni],
        torch.stack((ii, ji), dim=1),
        (h, w),
        net,
        head.iou_normalizer * multiplier,
        head,
    )
    delta[bi, ai, :4, ji, ii] += box
    assigned = multiplier * head.obj_normalizer * (1 - p[bi, ai, 4, ji, ii])
    current = delta[bi, ai, 4, ji, ii]
    delta[bi, ai, 4, ji, ii] = torch.where(current == 0, assigned, current) if head.objectness_smooth else assigned
    delta[bi, ai, 5:, ji, ii] = _class_delta(p[bi, ai, 5:, ji, ii], delta[bi, ai, 5:, ji, ii], class_id, head)
    stats.count += len(bi)
    stats.iou_sum += float(iou.sum())


def _average_boxes(delta: torch.Tensor, head: YoloHead) -> None:
    """With `iou_thresh` < 1, darknet divides each box delta by the number of classes pushed up in its
    entry (in place): a prediction assigned truths of several classes averages their boxes."""
    up = (delta[:, :, 5:] > 0).sum(dim=2, keepdim=True)
    divide = (delta[:, :, 4:5] != 0) & (up > 0)
    delta[:, :, :4] = torch.where(divide, delta[:, :, :4] / up.clamp(min=1), delta[:, :, :4])
