"""Modules for darknet's older and auxiliary layers: `[local]`, `[detection]` (YOLOv1) and `[implicit]`.

Each follows the inference path of its darknet forward function (AlexeyAB's `local_layer.c`,
`detection_layer.c`, `representation_layer.c`) and lists its weights in file order with `darknet_tensors()`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .activations import activation


class LocallyConnected(nn.Module):
    """`[local]`: a convolution whose weights differ at every output position (forward_local_layer).

    `weight[j, f, k]` is filter f's weight at output position j (row-major over out_h × out_w) for
    im2col row k = (channel·size + ky)·size + kx; `bias[f, y, x]` is one bias per output value.
    Both shapes are darknet's file layout (biases, then weights location by location)."""

    def __init__(
        self,
        in_channels: int,
        filters: int,
        size: int,
        stride: int,
        padding: int,
        out_size: tuple[int, int],
        activation_name: str = "logistic",
    ):
        super().__init__()
        out_h, out_w = out_size
        k = in_channels * size * size
        scale = math.sqrt(2.0 / k)
        self.weight = nn.Parameter(torch.empty(out_h * out_w, filters, k).uniform_(-scale, scale))
        self.bias = nn.Parameter(torch.zeros(filters, out_h, out_w))
        self.size, self.stride, self.padding = size, stride, padding
        self.act = activation(activation_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cols = F.unfold(x, self.size, padding=self.padding, stride=self.stride)
        out = torch.einsum("bkl,lfk->bfl", cols, self.weight)
        return self.act(out.reshape(x.shape[0], *self.bias.shape) + self.bias)

    def darknet_tensors(self) -> list[torch.Tensor]:
        return [self.bias, self.weight]


class Detection(nn.Module):
    """`[detection]` (YOLOv1) at inference: the input unchanged, except that with `softmax` each of
    the side² cells' `classes` scores (the first side²·classes values) get a softmax. The layout
    is darknet's: side²·classes class scores, then side²·num objectness, then side²·num·coords boxes."""

    def __init__(self, side: int, classes: int, num: int = 1, softmax: bool = False, sqrt: bool = False):
        super().__init__()
        self.side, self.classes, self.num, self.softmax, self.sqrt = side, classes, num, softmax, sqrt

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.softmax:
            return x
        flat = x.flatten(1)
        cells = self.side * self.side * self.classes
        scores = flat[:, :cells].reshape(-1, self.side * self.side, self.classes).softmax(-1)
        return torch.cat([scores.flatten(1), flat[:, cells:]], dim=1).view_as(x)

    @torch.jit.export
    def decode(self, output: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """forward's output → (B, side²·num, 5 + classes) rows as get_detection_detections reads them:
        x, y, w, h in pixels of `image` (squared w, h with `sqrt`), objectness, the cell's class scores;
        ordered cell (row-major), then box."""
        b, cells, n, k = output.shape[0], self.side * self.side, self.num, self.classes
        flat = output.reshape(b, -1)
        scores = flat[:, : cells * k].reshape(b, cells, 1, k).expand(b, cells, n, k)
        objectness = flat[:, cells * k : cells * (k + n)].reshape(b, cells, n, 1)
        boxes = flat[:, cells * (k + n) : cells * (k + 5 * n)].reshape(b, cells, n, 4)
        cell = torch.arange(cells, device=output.device).to(output.dtype)
        col = (cell % self.side).reshape(1, cells, 1)
        row = torch.div(cell, self.side, rounding_mode="floor").reshape(1, cells, 1)
        width, height = image.shape[-1], image.shape[-2]
        power = 2.0 if self.sqrt else 1.0
        x = (boxes[..., 0] + col) / self.side * width
        y = (boxes[..., 1] + row) / self.side * height
        w = boxes[..., 2].pow(power) * width
        h = boxes[..., 3].pow(power) * height
        rows = torch.cat((torch.stack((x, y, w, h), dim=-1), objectness, scores), dim=-1)
        return rows.reshape(b, cells * n, 5 + k)


class Implicit(nn.Module):
    """`[implicit]`: a learned filters×atoms×1 tensor, repeated for every image of the input's batch
    (the input's values are never read), as forward_implicit_layer. Initialised like darknet:
    mean + uniform(−std, std)."""

    def __init__(self, filters: int, atoms: int = 1, mean: float = 0.0, std: float = 0.2):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(filters, atoms, 1).uniform_(-std, std) + mean)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight.unsqueeze(0).expand(x.shape[0], -1, -1, -1)

    def darknet_tensors(self) -> list[torch.Tensor]:
        return [self.weight]
