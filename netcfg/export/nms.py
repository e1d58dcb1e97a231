"""Decode + NMS inside the exported graph: a network's heads → one (K, 7) table of detections.

Darknet's semantics (`get_network_boxes` then `do_nms_sort`): score = objectness × class probability
(× (1 − mean σ) for `[Gaussian_yolo]`), kept when objectness and score exceed `thresh`; then greedy
NMS per class over all heads' boxes together, a box suppressed by a higher-scored kept box of its
class when their IoU exceeds `iou_thresh`. The NMS is a torch custom op (`netcfg::nms`) that the
exporter translates to ONNX's NonMaxSuppression; its eager implementation is what parity compares.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from ..errors import CfgWarning, NetcfgError
from ..modules.heads import GaussianYolo, Region
from ..network import Network

#: Columns of the `detections` output, one row per kept box.
COLUMNS = ("batch", "x1", "y1", "x2", "y2", "score", "class")
#: Darknet's `detector test` defaults: `-thresh 0.25` and `nms = .45`.
THRESH, IOU_THRESH = 0.25, 0.45
_GREEDY = ("greedynms", "default")


@torch.library.custom_op("netcfg::nms", mutates_args=())
def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_thresh: float, score_thresh: float) -> torch.Tensor:
    """ONNX NonMaxSuppression (centre boxes): boxes (B, N, 4) x, y, w, h and scores (B, C, N) →
    (K, 3) int64 rows (batch, class, box), per batch and class in descending score."""
    picked = [
        torch.tensor([[b, c, i] for i in _greedy(boxes[b], scores[b, c], iou_thresh, score_thresh)], dtype=torch.int64)
        for b in range(scores.shape[0])
        for c in range(scores.shape[1])
    ]
    return torch.cat([p.reshape(-1, 3) for p in picked]) if picked else boxes.new_zeros((0, 3), dtype=torch.int64)


@nms.register_fake
def _nms_shape(boxes: torch.Tensor, scores: torch.Tensor, iou_thresh: float, score_thresh: float) -> torch.Tensor:
    return boxes.new_empty((torch.library.get_ctx().new_dynamic_size(), 3), dtype=torch.int64)


def _greedy(boxes: torch.Tensor, scores: torch.Tensor, iou_thresh: float, score_thresh: float) -> list[int]:
    """Indices kept by greedy NMS of one class's boxes (N, 4) with scores (N,), best first."""
    order = [int(i) for i in torch.argsort(scores, descending=True, stable=True) if scores[i] > score_thresh]
    corners = torch.cat((boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2), dim=1)
    kept: list[int] = []
    for i in order:
        if all(_iou(corners[i], corners[j]) <= iou_thresh for j in kept):
            kept.append(i)
    return kept


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    """IoU of two (x1, y1, x2, y2) boxes; 0 when either is empty, as onnxruntime."""
    area_a, area_b = float((a[2] - a[0]) * (a[3] - a[1])), float((b[2] - b[0]) * (b[3] - b[1]))
    if area_a <= 0 or area_b <= 0:
        return 0.0
    w = max(0.0, float(torch.minimum(a[2], b[2]) - torch.maximum(a[0], b[0])))
    h = max(0.0, float(torch.minimum(a[3], b[3]) - torch.maximum(a[1], b[1])))
    return w * h / (area_a + area_b - w * h)


def nms_onnx(boxes, scores, iou_thresh: float, score_thresh: float):
    """The onnxscript translation of `netcfg::nms`: ONNX NonMaxSuppression, no per-class limit."""
    from onnxscript import opset18 as op

    limit = op.Constant(value_int=2**31 - 1)
    iou = op.Constant(value_float=iou_thresh)
    score = op.Constant(value_float=score_thresh)
    return op.NonMaxSuppression(boxes, scores, limit, iou, score, center_point_box=1)


class WithNms(nn.Module):
    """`network` (eval mode, decoding its heads) followed by darknet's thresholds and per-class NMS:
    returns (K, 7) detections, columns `COLUMNS`, boxes as corners in the input's pixels."""

    def __init__(self, network: Network, thresh: float = THRESH, iou_thresh: float = IOU_THRESH):
        super().__init__()
        self.heads = _heads(network)
        self.network = network.eval()
        self.thresh, self.iou_thresh = float(thresh), float(iou_thresh)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = self.network(x)
        rows = [_boxes_scores(outputs[k], gaussian, self.thresh) for k, gaussian in self.heads]
        boxes = torch.cat([r[0] for r in rows], dim=1)
        scores = torch.cat([r[1] for r in rows], dim=1)
        picked = nms(boxes, scores.transpose(1, 2).contiguous(), self.iou_thresh, self.thresh)
        batch, cls, index = picked[:, 0], picked[:, 1], picked[:, 2]
        box = boxes[batch, index]
        corners = torch.cat((box[:, :2] - box[:, 2:] / 2, box[:, :2] + box[:, 2:] / 2), dim=1)
        score = scores[batch, index, cls]
        columns = (batch.to(box.dtype).unsqueeze(1), corners, score.unsqueeze(1), cls.to(box.dtype).unsqueeze(1))
        return torch.cat(columns, dim=1)


def _boxes_scores(rows: torch.Tensor, gaussian: bool, thresh: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One head's decoded rows → boxes (B, N, 4) x, y, w, h and scores (B, N, classes), darknet's
    `prob`: objectness × class (× (1 − mean σ) for Gaussian heads), zero unless objectness > thresh."""
    lead = 9 if gaussian else 5
    objectness = rows[..., lead - 1 : lead]
    scores = objectness * rows[..., lead:]
    if gaussian:
        scores = scores * (1 - rows[..., 4:8].mean(dim=-1, keepdim=True))
    return rows[..., :4], torch.where(objectness > thresh, scores, torch.zeros_like(scores))


def _heads(network: Network) -> list[tuple[int, bool]]:
    """(position among the outputs, is Gaussian) of each head; NetcfgError when NMS cannot apply."""
    heads, classes = [], set()
    for k, index in enumerate(network.spec.outputs):
        layer = network.spec.layers[index]
        if not layer.section.is_output:
            continue
        module = network.layers[index]
        if isinstance(module, Region) and "tree" in layer.section.extras:
            raise NetcfgError(f"layer {index} [region] uses a tree= hierarchy, which --nms does not decode")
        kind = layer.section.extras.get("nms_kind", "default")
        if kind not in _GREEDY:
            message = f"layer {index} asks for nms_kind={kind}; the exported NMS is greedy"
            warnings.warn(message, CfgWarning, stacklevel=3)
        heads.append((k, isinstance(module, GaussianYolo)))
        classes.add(module.classes)
    if not heads:
        raise NetcfgError("the network has no detection head ([yolo], [region], ...) to apply NMS to")
    if len(classes) > 1:
        raise NetcfgError(f"the heads predict different class counts {sorted(classes)}; NMS needs one")
    return heads
