"""darknet's SGD (update_convolutional_layer and friends) as a standard `torch.optim.SGD`.

darknet accumulates the negative gradient of its summed cost over `batch` images, adds −decay·batch·w
for weights only (not biases, batch-norm scales or statistics), steps by learning_rate / batch and
keeps momentum × the step. With the gradient of cost / batch that is exactly torch's SGD (momentum,
no dampening, weight_decay = decay on the weight group): divide `DarknetLoss`'s result by `[net] batch`.
A layer's own `learning_rate=` key scales its rate (darknet's learning_rate_scale).
"""

from __future__ import annotations

import torch
from torch import nn

from ..network import Network


def _decays(parameter: nn.Parameter) -> bool:
    """Convolution and connected weights decay (two or more dimensions); biases and scales do not."""
    return parameter.dim() > 1


def _rate_scale(model: Network, index: int) -> float:
    """A layer's `learning_rate=` (darknet's per-layer learning_rate_scale), 1 when absent."""
    written = model.spec.layers[index].section.extras.get("learning_rate")
    return float(written) if written is not None else 1.0


def parameter_groups(model: Network) -> list[dict]:
    """SGD groups by layer rate scale and decay: [{params, lr, weight_decay}], shared tensors once."""
    net, seen, groups = model.spec.net, set(), {}
    for index, layer in enumerate(model.layers):
        scale = _rate_scale(model, index)
        for parameter in layer.parameters():
            if id(parameter) in seen or not parameter.requires_grad:
                continue
            seen.add(id(parameter))
            key = (scale, _decays(parameter))
            group = groups.setdefault(
                key, {"params": [], "lr": net.learning_rate * scale, "weight_decay": net.decay if key[1] else 0.0}
            )
            group["params"].append(parameter)
    return list(groups.values())


def darknet_sgd(model: Network) -> torch.optim.SGD:
    """The optimiser darknet trains `model` with, from its `[net]` learning_rate, momentum and decay."""
    net = model.spec.net
    return torch.optim.SGD(parameter_groups(model), lr=net.learning_rate, momentum=net.momentum)
