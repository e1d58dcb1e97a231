"""Darknet's detection heads `[yolo]`, `[region]` and `[Gaussian_yolo]`.

`forward(x)` returns darknet's `l.output`: the input's shape (B, C, H, W) with the layer's in-place
activations, in train and eval mode alike; that is what later layers read. `decode(output, image)`
turns that output into boxes in pixels of `image` (the network input actually given, as darknet
after `resize_network`). Anchors are Python constants, so a meta-device build needs no re-initialising,
and every size-derived value is a tensor op, so traced and scripted heads decode at any input size.
"""

from __future__ import annotations

import torch
from torch import nn

from .common import constant


def _grid(h: int, w: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(H, W) column and row indices of each cell, in `like`'s dtype and device."""
    rows, cols = torch.meshgrid(
        torch.arange(h, dtype=like.dtype, device=like.device),
        torch.arange(w, dtype=like.dtype, device=like.device),
        indexing="ij",
    )
    return cols, rows


def _scale_xy(xy: torch.Tensor, scale_x_y: float) -> torch.Tensor:
    """darknet's `scal_add_cpu(..., scale_x_y, -0.5*(scale_x_y - 1), ...)` on the box centres."""
    return xy * scale_x_y - 0.5 * (scale_x_y - 1)


class _AnchorHead(nn.Module):
    """What the heads share: the anchors (constants), the per-anchor view of the predictions and
    placing box centres in the image."""

    def __init__(self, anchors: tuple[tuple[float, float], ...], classes: int, per_anchor: int):
        super().__init__()
        self.anchors = [[float(w), float(h)] for w, h in anchors]
        self.num = len(anchors)
        self.classes = classes
        self.per_anchor = per_anchor

    def anchor_sizes(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(1, A, 1, 1) widths and heights, built from the constants in `like`'s dtype and device."""
        sizes = constant(self.anchors, like).reshape(1, self.num, 1, 1, 2)
        return sizes[..., 0], sizes[..., 1]

    def by_anchor(self, x: torch.Tensor) -> torch.Tensor:
        """(B, A·per_anchor, H, W) → (B, A, per_anchor, H, W), darknet's entry order."""
        return x.reshape(x.shape[0], self.num, self.per_anchor, x.shape[2], x.shape[3])

    def centres(self, x: torch.Tensor, y: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cell offsets (B, A, H, W) → centres in `image` pixels: (col + x) / grid_w · image_w, likewise y."""
        h, w = x.shape[-2], x.shape[-1]
        cols, rows = _grid(h, w, x)
        return (cols + x) * image.shape[-1] / w, (rows + y) * image.shape[-2] / h

    def rows(self, columns: list[torch.Tensor], scores: torch.Tensor) -> torch.Tensor:
        """(B, A, H, W) columns, then (B, A, k, H, W) scores → (B, A·H·W, columns + k), ordered anchor,
        row, column."""
        table = torch.cat((torch.stack(columns, dim=2), scores), dim=2).permute(0, 1, 3, 4, 2)
        return table.reshape(table.shape[0], -1, table.shape[-1])


class Yolo(_AnchorHead):
    """`[yolo]`, as darknet's forward_yolo_layer and get_yolo_box. `decode` columns: x, y, w, h in
    input pixels (anchors in input pixels), objectness, class scores; ordered anchor, row, column."""

    def __init__(
        self,
        anchors: tuple[tuple[float, float], ...],
        classes: int,
        scale_x_y: float = 1.0,
        new_coords: bool = False,
    ):
        super().__init__(anchors, classes, 5 + classes)
        self.scale_x_y = scale_x_y
        self.new_coords = new_coords

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """l.output: logistic on x, y, objectness and classes (none with `new_coords`), then x, y scaled.
        The logistic runs once over every entry (one pass instead of two strided ones); w and h come
        back raw."""
        p = self.by_anchor(x)
        act = p if self.new_coords else torch.sigmoid(p)
        parts = (_scale_xy(act[:, :, :2], self.scale_x_y), p[:, :, 2:4], act[:, :, 4:])
        return torch.cat(parts, dim=2).reshape(x.shape)

    @torch.jit.export
    def decode(self, output: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """This head's output → (B, A·H·W, 5 + classes) boxes in pixels of `image` (only its size is read)."""
        p = self.by_anchor(output)
        x, y = self.centres(p[:, :, 0], p[:, :, 1], image)
        anchor_w, anchor_h = self.anchor_sizes(output)
        tw, th = p[:, :, 2], p[:, :, 3]
        if self.new_coords:
            w, h = tw * tw * 4 * anchor_w, th * th * 4 * anchor_h
        else:
            w, h = torch.exp(tw) * anchor_w, torch.exp(th) * anchor_h
        return self.rows([x, y, w, h], p[:, :, 4:])


class Region(_AnchorHead):
    """`[region]` (YOLOv2), as darknet's forward_region_layer and get_region_box. `decode` columns:
    x, y, w, h in input pixels (anchors in grid cells), objectness, class scores (softmax when
    `softmax`, else raw, e.g. with a `tree`); ordered anchor, row, column."""

    def __init__(self, anchors: tuple[tuple[float, float], ...], classes: int, softmax: bool = False):
        super().__init__(anchors, classes, 5 + classes)
        self.softmax = softmax

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """l.output: darknet's CPU forward first flattens the input to location-major memory (per cell,
        A·(5 + classes) entries), then applies logistic to objectness and softmax to classes; that
        memory is returned viewed as (B, C, H, W), as the layers after it read it."""
        cells = x.permute(0, 2, 3, 1).reshape(x.shape[0], x.shape[2], x.shape[3], self.num, self.per_anchor)
        coords, obj, cls = cells[..., :4], torch.sigmoid(cells[..., 4:5]), cells[..., 5:]
        if self.softmax:
            cls = torch.softmax(cls, dim=-1)
        return torch.cat((coords, obj, cls), dim=-1).reshape(x.shape)

    @torch.jit.export
    def decode(self, output: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """This head's output → (B, A·H·W, 5 + classes) boxes in pixels of `image` (only its size is read)."""
        b, h, w = output.shape[0], output.shape[2], output.shape[3]
        p = output.reshape(b, h, w, self.num, self.per_anchor).permute(0, 3, 4, 1, 2)
        x, y = self.centres(torch.sigmoid(p[:, :, 0]), torch.sigmoid(p[:, :, 1]), image)
        anchor_w, anchor_h = self.anchor_sizes(output)
        width = torch.exp(p[:, :, 2]) * anchor_w * image.shape[-1] / w
        height = torch.exp(p[:, :, 3]) * anchor_h * image.shape[-2] / h
        return self.rows([x, y, width, height], p[:, :, 4:])


class GaussianYolo(_AnchorHead):
    """`[Gaussian_yolo]`, as darknet's forward_gaussian_yolo_layer and get_gaussian_yolo_box. Entries
    per anchor: μx, σx, μy, σy, μw, σw, μh, σh, objectness, classes. `decode` columns: x, y, w, h in
    input pixels (`yolo_point` shifts x, y by half the box), σx, σy, σw, σh, objectness, class scores;
    ordered anchor, row, column."""

    def __init__(
        self,
        anchors: tuple[tuple[float, float], ...],
        classes: int,
        scale_x_y: float = 1.0,
        yolo_point: str = "center",
    ):
        super().__init__(anchors, classes, 9 + classes)
        self.scale_x_y = scale_x_y
        self.shift = {"center": 0.0, "left_top": 0.5, "right_bottom": -0.5}[yolo_point]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """l.output: logistic on every entry but μw, μh; μx, μy then scaled."""
        raw = self.by_anchor(x)
        act = torch.sigmoid(raw)
        mu_x, mu_y = _scale_xy(act[:, :, 0:1], self.scale_x_y), _scale_xy(act[:, :, 2:3], self.scale_x_y)
        mu_w, mu_h = raw[:, :, 4:5], raw[:, :, 6:7]
        parts = (mu_x, act[:, :, 1:2], mu_y, act[:, :, 3:4], mu_w, act[:, :, 5:6], mu_h, act[:, :, 7:])
        return torch.cat(parts, dim=2).reshape(x.shape)

    @torch.jit.export
    def decode(self, output: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """This head's output → (B, A·H·W, 9 + classes) boxes in pixels of `image` (only its size is read)."""
        p = self.by_anchor(output)
        anchor_w, anchor_h = self.anchor_sizes(output)
        w, h = torch.exp(p[:, :, 4]) * anchor_w, torch.exp(p[:, :, 6]) * anchor_h
        x, y = self.centres(p[:, :, 0], p[:, :, 2], image)
        x, y = x + self.shift * w, y + self.shift * h
        return self.rows([x, y, w, h, p[:, :, 1], p[:, :, 3], p[:, :, 5], p[:, :, 7]], p[:, :, 8:])
