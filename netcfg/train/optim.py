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

from ..modules.darknet import Shortcut
from ..network import Network


def _decaying(layer: nn.Module) -> set[int]:
    """ids of the parameters darknet decays: convolution and connected weights and `[shortcut]`'s
    weights; biases, batch-norm scales and other parameters do not."""
    found = set()
    for module in layer.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            found.add(id(module.weight))
        elif isinstance(module, Shortcut) and module.weights is not None:
            found.add(id(module.weights))
    return found


def _rate_scale(model: Network, index: int) -> float:
    """A layer's `learning_rate=` (darknet's per-layer learning_rate_scale), 1 when absent."""
    written = model.spec.layers[index].section.extras.get("learning_rate")
    return float(written) if written is not None else 1.0


def parameter_groups(model: Network) -> list[dict]:
    """SGD groups by layer rate scale and decay: [{params, lr, weight_decay}], shared tensors once."""
    net, seen, groups = model.spec.net, set(), {}
    for index, layer in enumerate(model.layers):
        scale, decaying = _rate_scale(model, index), _decaying(layer)
        for parameter in layer.parameters():
            if id(parameter) in seen or not parameter.requires_grad:
                continue
            seen.add(id(parameter))
            key = (scale, id(parameter) in decaying)
            group = groups.setdefault(
                key, {"params": [], "lr": net.learning_rate * scale, "weight_decay": net.decay if key[1] else 0.0}
            )
            group["params"].append(parameter)
    return list(groups.values())


def darknet_sgd(model: Network) -> torch.optim.SGD:
    """The optimiser darknet trains `model` with, from its `[net]` learning_rate, momentum and decay."""
    net = model.spec.net
    return torch.optim.SGD(parameter_groups(model), lr=net.learning_rate, momentum=net.momentum)
