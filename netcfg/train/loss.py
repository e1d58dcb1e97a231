"""`DarknetLoss`: darknet's detection cost for a built network, with darknet's gradient.

darknet trains a `[yolo]` head by writing `l.delta` (the negative gradient of its cost at the layer's
input) and passing it unchanged to the layer below (backward_yolo_layer is an `axpy`): the logistic
of x, y, objectness and classes is not differentiated, so the deltas act as cross-entropy gradients
at the logits. `DarknetLoss` reproduces that: it makes each head's backward pass the gradient at its
output straight to its input, and returns darknet's cost Σ delta² (what darknet prints, `l.cost`)
with gradient −delta·`delta_normalizer` at each head output (the GPU build's scaling).
`[Gaussian_yolo]` heads are handled as `[yolo]` ones, and `[region]` heads alike (their deltas already
include the logistic's gradient, as darknet's).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import NetcfgError
from ..network import Network
from ..sections.heads import GaussianYoloSection, RegionSection, YoloSection
from .gaussian import GaussianHead, gaussian_delta
from .region import RegionHead, region_delta
from .yolo import YoloHead, YoloStats, yolo_delta


class _StraightThrough(torch.autograd.Function):
    """Forward: the head's output; backward: the output's gradient, unchanged, to the head's input."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        return output.detach().clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


class _RegionStraightThrough(torch.autograd.Function):
    """As `_StraightThrough`, for `[region]`, whose output is its input's memory in location-major
    order (darknet's flatten): the gradient goes back to the input's channel-major layout."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        return output.detach().clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        b, c, h, w = grad.shape
        return grad.reshape(b, h, w, c).permute(0, 3, 1, 2), None


class _DeltaCost(torch.autograd.Function):
    """Σ delta², with gradient −delta·scale at the output (delta was computed from the output's values)."""

    @staticmethod
    def forward(ctx, output: torch.Tensor, delta: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(delta)
        ctx.scale = scale
        return (delta * delta).sum()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (delta,) = ctx.saved_tensors
        return -delta * ctx.scale * grad, None, None


class DarknetLoss(nn.Module):
    """darknet's training cost of `model`'s `[yolo]`, `[Gaussian_yolo]` and `[region]` heads:
    `loss(model(x), targets)` in train mode.

    `targets` is (B, T, 5) rows `class x y w h` in input fractions, padded with rows of 0 and class −1
    (`collate` builds it). The result is summed over images, as darknet's; divide it by `[net] batch`
    before `backward()` to match darknet's update (`darknet_sgd`). Constructing it makes the heads'
    backward darknet's (see the module docstring); `remove()` restores them. `stats` holds each head's
    assigned-truth count and IoU sum from the last call. `seen` (images seen, this batch included; the
    trainer keeps it) ends `[region]`'s pull towards the anchors at 12800, as darknet's `net.seen`.
    """

    def __init__(self, model: Network):
        super().__init__()
        self.heads: list[tuple[int, YoloHead | GaussianHead | RegionHead]] = []
        self._hooks = [model.register_forward_pre_hook(self._remember_size)]
        for position, index in enumerate(model.spec.outputs):
            section = model.spec.layers[index].section
            if not section.is_output:
                continue
            if type(section) in (YoloSection, GaussianYoloSection):
                kind = GaussianHead if type(section) is GaussianYoloSection else YoloHead
                self.heads.append((position, kind.from_section(section)))
                self._hooks.append(model.layers[index].register_forward_hook(_straight))
            elif type(section) is RegionSection:
                self.heads.append((position, RegionHead.from_section(section, index)))
                self._hooks.append(model.layers[index].register_forward_hook(_straight_region))
            else:
                self.remove()
                raise NetcfgError(
                    f"layer {index} [{section.type_name}]: the loss covers [yolo], [Gaussian_yolo] and [region] heads"
                )
        if not self.heads:
            self.remove()
            raise NetcfgError("the network has no [yolo], [Gaussian_yolo] or [region] head to train")
        self._size: tuple[int, int] = tuple(model.spec.input_shape[1:])
        self.seen = 0
        self.stats: list[YoloStats] = []

    def _remember_size(self, module: nn.Module, args: tuple) -> None:
        """The input size each call trains at (darknet's net.w, net.h after a random resize)."""
        self._size = (int(args[0].shape[-2]), int(args[0].shape[-1]))

    def remove(self) -> None:
        """Give the heads their ordinary backward again."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    def forward(self, outputs: Sequence[torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        total = outputs[0].new_zeros(())
        self.stats = []
        for position, head in self.heads:
            output = outputs[position]
            if isinstance(head, RegionHead):
                delta, stats = region_delta(output, targets.to(output.device), head, self.seen)
                scale = 1.0
            elif isinstance(head, GaussianHead):
                delta, stats = gaussian_delta(output, targets.to(output.device), head, self._size)
                scale = head.delta_normalizer
            else:
                delta, stats = yolo_delta(output, targets.to(output.device), head, self._size)
                scale = head.delta_normalizer
            self.stats.append(stats)
            total = total + _DeltaCost.apply(output, delta, scale)
        return total


def _straight(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    return _StraightThrough.apply(args[0], output) if torch.is_grad_enabled() else output


def _straight_region(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    return _RegionStraightThrough.apply(args[0], output) if torch.is_grad_enabled() else output
