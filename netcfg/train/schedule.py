"""darknet's learning-rate schedule (network.c get_current_rate) as a `torch.optim.lr_scheduler.LambdaLR`.

darknet counts updates as `seen / batch`: the first update already runs at update 1, so the scheduler's
step k (0 before any `scheduler.step()`) uses darknet's rate for update k + 1.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import torch


def darknet_rate(net, update: int, uniform: Callable[[], float] = random.random) -> float:
    """The learning rate darknet uses at update `update` (its get_current_batch) for `[net]` keys `net`."""
    if update < net.burn_in:
        return net.learning_rate * (update / net.burn_in) ** net.power
    policy, rate = net.policy, net.learning_rate
    if policy == "step":
        return rate * net.scale ** (update // net.step)
    if policy == "steps":
        for step, scale in zip(net.steps, net.scales):
            if step > update:
                return rate
            rate *= scale
        return rate
    if policy == "exp":
        return rate * net.gamma**update
    if policy == "poly":
        return rate * (1 - update / net.max_batches) ** net.power
    if policy == "random":
        return rate * uniform() ** net.power
    if policy == "sigmoid":
        return rate * (1 / (1 + math.exp(net.gamma * (update - net.step))))
    if policy == "sgdr":
        return _sgdr(net, update)
    return rate


def _sgdr(net, update: int) -> float:
    """Cosine annealing with warm restarts: cycles of `sgdr_cycle` updates (default `max_batches`),
    each `sgdr_mult` times longer than the last."""
    start, cycle = 0, net.sgdr_cycle if net.sgdr_cycle is not None else net.max_batches
    while start + cycle < update:
        start += cycle
        cycle *= net.sgdr_mult
    low = net.learning_rate_min
    return low + 0.5 * (net.learning_rate - low) * (1 + math.cos((update - start) * 3.14159265 / cycle))


def darknet_scheduler(optimizer: torch.optim.Optimizer, net, last_update: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR scaling each group's initial rate by darknet's rate / `learning_rate`; step it after
    every optimiser step. `last_update` resumes after that many updates."""
    base = net.learning_rate

    def factor(step: int) -> float:
        rate = darknet_rate(net, step + 1 + last_update)
        return rate / base if base else 0.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
