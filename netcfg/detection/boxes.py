"""darknet's box pipeline on decoded head outputs, vectorised: the thresholds of get_yolo_detections
(and its [Gaussian_yolo], [region] and [detection] counterparts), correct_yolo_boxes back to the
original image, and the per-class greedy suppression of do_nms_sort / diounms_sort.

Boxes are (N, 4) centre x, centre y, width, height relative to the image (darknet's `box` with
relative=1) until `pixel_corners` turns them into clipped pixel corners.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .images import letterbox_size

#: The section types `detect` reads boxes from, as darknet's fill_network_boxes.
HEAD_TYPES = ("yolo", "Gaussian_yolo", "region", "detection")


@dataclass(frozen=True)
class Candidates:
    """One image's detections before suppression: boxes, objectness and per-class scores (0 below thresh)."""

    boxes: torch.Tensor
    objectness: torch.Tensor
    scores: torch.Tensor

    def cat(self, other: Candidates) -> Candidates:
        return Candidates(*(torch.cat(pair) for pair in zip(self.fields(), other.fields())))

    def fields(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.boxes, self.objectness, self.scores

    def with_boxes(self, boxes: torch.Tensor) -> Candidates:
        return Candidates(boxes, self.objectness, self.scores)

    def select(self, keep: torch.Tensor) -> Candidates:
        return Candidates(*(field[keep] for field in self.fields()))


def candidates(kind: str, rows: torch.Tensor, net_w: int, net_h: int, thresh: float) -> Candidates:
    """One image's decoded rows (N, columns) of a head of type `kind` → darknet's detections: [yolo] and
    [Gaussian_yolo] keep rows with objectness > thresh, scores objectness·class (· (1 − mean σ) for
    Gaussian), zeroed unless > thresh; [region] and [detection] score every row the same way. Rows
    without any score above thresh are dropped: they can neither be reported nor suppress another."""
    rows = rows.float()
    boxes = rows[:, :4] / torch.tensor([net_w, net_h, net_w, net_h], dtype=rows.dtype, device=rows.device)
    first_class = 9 if kind == "Gaussian_yolo" else 5
    objectness, classes = rows[:, first_class - 1], rows[:, first_class:]
    scale = objectness
    if kind == "Gaussian_yolo":
        scale = objectness * (1.0 - rows[:, 4:8].mean(dim=1))
    scores = scale[:, None] * classes
    scores = torch.where(scores > thresh, scores, torch.zeros_like(scores))
    keep = (scores > 0).any(dim=1)
    if kind in ("yolo", "Gaussian_yolo"):
        keep &= objectness > thresh
    return Candidates(boxes, objectness, scores).select(keep)


def correct_boxes(
    boxes: torch.Tensor, image_w: int, image_h: int, net_w: int, net_h: int, letter: bool
) -> torch.Tensor:
    """darknet's correct_yolo_boxes (relative=1): boxes relative to the network input → relative to the
    original image, undoing the letterbox's padding and scale (the identity without `letter`)."""
    if not letter:
        return boxes
    new_w, new_h = letterbox_size(image_w, image_h, net_w, net_h)
    ratio_w, ratio_h = new_w / net_w, new_h / net_h
    x = (boxes[:, 0] - (net_w - new_w) / 2.0 / net_w) / ratio_w
    y = (boxes[:, 1] - (net_h - new_h) / 2.0 / net_h) / ratio_h
    return torch.stack((x, y, boxes[:, 2] * (net_w / new_w), boxes[:, 3] * (net_h / new_h)), dim=1)


def _edges(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(left, top, right, bottom) of centre-size boxes, each (N,)."""
    x, y, w, h = boxes.unbind(1)
    return x - w / 2, y - h / 2, x + w / 2, y + h / 2


def pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(len(a), len(b)) IoU as darknet's box_iou: 0 where the boxes do not overlap (or the union is 0)."""
    (la, ta, ra, ba), (lb, tb, rb, bb) = _edges(a), _edges(b)
    w = torch.minimum(ra[:, None], rb[None]) - torch.maximum(la[:, None], lb[None])
    h = torch.minimum(ba[:, None], bb[None]) - torch.maximum(ta[:, None], tb[None])
    inter = torch.where((w < 0) | (h < 0), torch.zeros_like(w), w * h)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    valid = (inter != 0) & (union != 0)
    return torch.where(valid, inter / torch.where(valid, union, torch.ones_like(union)), torch.zeros_like(inter))


def pairwise_diou(a: torch.Tensor, b: torch.Tensor, beta: float) -> torch.Tensor:
    """(len(a), len(b)) darknet's box_diounms: IoU − (centre distance² / enclosing diagonal²)^beta
    (IoU when the enclosing box is a point)."""
    (la, ta, ra, ba), (lb, tb, rb, bb) = _edges(a), _edges(b)
    w = torch.maximum(ra[:, None], rb[None]) - torch.minimum(la[:, None], lb[None])
    h = torch.maximum(ba[:, None], bb[None]) - torch.minimum(ta[:, None], tb[None])
    c = w * w + h * h
    d = (a[:, None, 0] - b[None, :, 0]) ** 2 + (a[:, None, 1] - b[None, :, 1]) ** 2
    iou = pairwise_iou(a, b)
    penalty = (d / torch.where(c == 0, torch.ones_like(c), c)) ** beta
    return torch.where(c == 0, iou, iou - penalty)


def overlap(a: torch.Tensor, b: torch.Tensor, kind: str, beta: float) -> torch.Tensor:
    """The (len(a), len(b)) measure a head's `nms_kind` suppresses on: IoU for default and cornersnms,
    DIoU with exponent 0.6 for greedynms (darknet's box_diou), with `beta` for diounms."""
    if kind == "greedynms":
        return pairwise_diou(a, b, 0.6)
    if kind == "diounms":
        return pairwise_diou(a, b, beta)
    return pairwise_iou(a, b)


def greedy_keep(suppresses: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    """Greedy NMS over boxes sorted best first: box i is kept if `alive` and no kept box before it
    suppresses it (`suppresses[j, i]`, j < i). Iterated to its fixed point, unique and reached within N steps."""
    n = suppresses.shape[0]
    index = torch.arange(n, device=suppresses.device)
    suppresses = suppresses & (index[:, None] < index[None])
    keep = alive
    for _ in range(n):
        updated = alive & ~(suppresses & keep[:, None]).any(dim=0)
        if torch.equal(updated, keep):
            break
        keep = updated
    return keep


#: Boxes of one class compared at a time: NMS memory grows as NMS_BLOCK × boxes, not boxes².
NMS_BLOCK = 2048


def greedy_nms(boxes: torch.Tensor, nms: float, kind: str, beta: float) -> torch.Tensor:
    """Which of `boxes` (sorted best first) greedy NMS keeps, block by block: a block's boxes are first
    struck by every box kept before it, then suppress each other."""
    keep = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    for start in range(0, len(boxes), NMS_BLOCK):
        block = boxes[start : start + NMS_BLOCK]
        alive = ~(overlap(boxes[:start][keep[:start]], block, kind, beta) > nms).any(dim=0)
        keep[start : start + len(block)] = greedy_keep(overlap(block, block, kind, beta) > nms, alive)
    return keep


def suppress(found: Candidates, nms: float, kind: str = "default", beta: float = 0.6) -> torch.Tensor:
    """do_nms_sort / diounms_sort: per class, the scores sorted best first, and each kept box zeroes the
    class score of every later box it overlaps by more than `nms`. Returns the surviving scores."""
    scores = found.scores.clone()
    if nms <= 0:
        return scores  # darknet's `if (nms)`: no suppression
    for k in range(scores.shape[1]):
        (members,) = torch.nonzero(scores[:, k] > 0, as_tuple=True)
        if members.numel() < 2:
            continue
        order = members[torch.argsort(scores[members, k], descending=True, stable=True)]
        keep = greedy_nms(found.boxes[order], nms, kind, beta)
        scores[order[~keep], k] = 0
    return scores


def pixel_corners(boxes: torch.Tensor, image_w: int, image_h: int) -> torch.Tensor:
    """Relative centre-size boxes → (N, 4) x1, y1, x2, y2 in the image's pixels, clipped to [0, W] × [0, H]."""
    left, top, right, bottom = _edges(boxes)
    corners = torch.stack((left * image_w, top * image_h, right * image_w, bottom * image_h), dim=1)
    limits = torch.tensor([image_w, image_h, image_w, image_h], dtype=corners.dtype, device=corners.device)
    return torch.minimum(corners.clamp(min=0), limits)
