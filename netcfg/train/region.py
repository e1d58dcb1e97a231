"""`[region]`'s (YOLOv2) training deltas, as darknet's forward_region_layer writes `l.delta`
(region_layer.c), in the layer's location-major memory (per cell, `num` anchors of 5 + classes).

Unlike `[yolo]`, these deltas include the logistic's gradient (objectness, x, y): darknet's region
layer already returns the gradient at its raw input. Each truth goes to the anchor of its cell whose
box (or, with `bias_match`, anchor) has the best shape IoU; later truths in a cell overwrite earlier
ones. While fewer than 12800 images are seen, every prediction is also pulled towards its anchor
centred in its cell (scale 0.01).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import NetcfgError
from .boxes import box_iou
from .yolo import FOCAL_ALPHA, YoloStats

#: darknet pulls predictions towards their anchors until this many images are seen.
PRIOR_IMAGES = 12800


@dataclass(frozen=True)
class RegionHead:
    """What the loss of one `[region]` head reads: its anchors (grid cells) and keys."""

    anchors: tuple[tuple[float, float], ...]
    classes: int
    object_scale: float = 1.0
    noobject_scale: float = 1.0
    class_scale: float = 1.0
    coord_scale: float = 1.0
    rescore: bool = False
    bias_match: bool = False
    thresh: float = 0.5
    classfix: int = 0
    focal_loss: bool = False
    max_boxes: int = 200

    @classmethod
    def from_section(cls, section, index: int) -> RegionHead:
        """The head a `[region]` section describes; NetcfgError for what netcfg's loss does not cover."""
        if "tree" in section.extras or section.classfix > 0:
            raise NetcfgError(f"layer {index} [region]: the loss does not cover tree= or classfix > 0")
        keys = "classes object_scale noobject_scale class_scale coord_scale rescore bias_match thresh classfix "
        keys += "focal_loss max_boxes"
        return cls(anchors=section.selected_anchors(), **{k: getattr(section, k) for k in keys.split()})


def _box_delta(raw: torch.Tensor, truth: torch.Tensor, anchor: torch.Tensor, cell: torch.Tensor, grid, scale):
    """darknet's delta_region_box on K entries: (K, 4) deltas (replacing the old ones) and (K,) IoUs."""
    h, w = grid
    size = torch.tensor([w, h], dtype=raw.dtype, device=raw.device)
    xy = torch.sigmoid(raw[:, :2])
    pred = torch.cat(((cell + xy) / size, torch.exp(raw[:, 2:4]) * anchor / size), dim=1)
    target = torch.cat((truth[:, :2] * size - cell, torch.log(truth[:, 2:4] * size / anchor)), dim=1)
    delta = torch.cat(((target[:, :2] - xy) * xy * (1 - xy), target[:, 2:] - raw[:, 2:4]), dim=1)
    return scale * delta, box_iou(pred, truth)


def _class_delta(out: torch.Tensor, class_id: torch.Tensor, head: RegionHead) -> torch.Tensor:
    """darknet's delta_region_class (no tree) on K entries: (K, C) deltas."""
    onehot = torch.nn.functional.one_hot(class_id, head.classes).to(out.dtype)
    delta = head.class_scale * (onehot - out)
    if head.focal_loss:
        pt = out.gather(1, class_id[:, None])[:, 0] + 0.000000000000001
        delta = delta * (FOCAL_ALPHA * -(1 - pt) * (2 * pt * torch.log(pt) + pt - 1))[:, None]
    return delta


def region_delta(output: torch.Tensor, targets: torch.Tensor, head: RegionHead, seen: int):
    """darknet's `l.delta` for a `[region]` head, in `output`'s memory layout; `seen` counts the images
    seen including this batch. Returns the delta (output's shape) and the head's statistics."""
    b, _, h, w = output.shape
    a = len(head.anchors)
    p = output.detach().reshape(b, h, w, a, 5 + head.classes)
    like = dict(dtype=p.dtype, device=p.device)
    targets = targets[:, : head.max_boxes].to(p.dtype)
    cls = targets[..., 0]
    read = torch.cumprod(((targets[..., 1] != 0) | (cls >= head.classes)).to(torch.int8), dim=1).bool()
    usable = read & (cls >= 0) & (cls < head.classes)
    rows, cols = torch.meshgrid(torch.arange(h, **like), torch.arange(w, **like), indexing="ij")
    cell = torch.stack((cols, rows), dim=-1)[None, :, :, None].expand(b, h, w, a, 2)
    anchors = torch.tensor(head.anchors, **like).expand(b, h, w, a, 2)
    size = torch.tensor([w, h], **like)
    pred = torch.cat(((cell + torch.sigmoid(p[..., :2])) / size, torch.exp(p[..., 2:4]) * anchors / size), dim=-1)
    ious = box_iou(pred[..., None, :], targets[:, None, None, None, :, 1:])
    best = torch.where(usable[:, None, None, None], ious, torch.zeros_like(ious)).max(dim=-1).values
    obj = p[..., 4]
    delta = torch.zeros_like(p)
    if head.classfix == -1:
        delta[..., 4] = head.noobject_scale * (best - obj) * obj * (1 - obj)
    else:
        background = head.noobject_scale * (0 - obj) * obj * (1 - obj)
        delta[..., 4] = torch.where(best > head.thresh, torch.zeros_like(obj), background)
    if seen < PRIOR_IMAGES:
        centre = torch.cat(((cell + 0.5) / size, anchors / size), dim=-1).reshape(-1, 4)
        prior, _ = _box_delta(
            p[..., :4].reshape(-1, 4), centre, anchors.reshape(-1, 2), cell.reshape(-1, 2), (h, w), 0.01
        )
        delta[..., :4] = prior.reshape(b, h, w, a, 4)
    stats = YoloStats()
    for t in range(targets.shape[1]):
        _assign(p, delta, targets[:, t], usable[:, t], head, stats)
    return delta.reshape(output.shape), stats


def _assign(p, delta, truth, usable, head: RegionHead, stats: YoloStats) -> None:
    """One truth of every image: the best-shaped anchor of its cell learns it (in place)."""
    bi = usable.nonzero(as_tuple=True)[0]
    if not len(bi):
        return
    _, h, w, a, _ = p.shape
    like = dict(dtype=p.dtype, device=p.device)
    t = truth[bi]
    ii = (t[:, 1] * w).long().clamp(0, w - 1)
    ji = (t[:, 2] * h).long().clamp(0, h - 1)
    anchors = torch.tensor(head.anchors, **like)
    size = torch.tensor([w, h], **like)
    shapes = anchors[None] / size if head.bias_match else torch.exp(p[bi, ji, ii, :, 2:4]) * anchors / size
    shapes = shapes.expand(len(bi), a, 2)
    zeros = torch.zeros_like(shapes)
    shifted = torch.cat((torch.zeros_like(t[:, 1:3]), t[:, 3:5]), dim=1)
    best_n = box_iou(torch.cat((zeros, shapes), dim=-1), shifted[:, None]).argmax(dim=1)
    cell = torch.stack((ii, ji), dim=1).to(p.dtype)
    box, iou = _box_delta(p[bi, ji, ii, best_n, :4], t[:, 1:], anchors[best_n], cell, (h, w), head.coord_scale)
    delta[bi, ji, ii, best_n, :4] = box
    obj = p[bi, ji, ii, best_n, 4]
    goal = iou if head.rescore else torch.ones_like(iou)
    delta[bi, ji, ii, best_n, 4] = head.object_scale * (goal - obj) * obj * (1 - obj)
    delta[bi, ji, ii, best_n, 5:] = _class_delta(p[bi, ji, ii, best_n, 5:], t[:, 0].long(), head)
    stats.count += len(bi)
    stats.iou_sum += float(iou.sum())
