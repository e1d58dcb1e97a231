"""darknet's multi-scale training (detector.c train_detector, the last head's `random`): every tenth
update the network trains at a new input size, the cfg's own scaled by a random factor and rounded
to `[net] resize_step`; the largest size on the first update and over the last 100.
"""

from __future__ import annotations

import math
import random

import numpy as np

from ..budget import DEFAULT_BUDGET
from ..budget import check as check_budget
from ..errors import CfgError, NetcfgError
from ..resize import resized
from .augment import rand_scale

#: darknet draws a new size when its update count is a multiple of this.
RESIZE_EVERY = 10
#: Over the last this many updates darknet trains at the largest size (for batch norm's statistics).
LAST_UPDATES_AT_MAX = 100


class InputSize:
    """The (height, width) the dataset fits images to, which the training loop changes between
    updates; the sampler reads it as it draws each mini-batch's indices."""

    def __init__(self, height: int, width: int):
        self.current = (height, width)


class MultiScale:
    """One run's resize schedule: before every `RESIZE_EVERY`-th update, a new size into `size`
    (drawn alike on every process: seeded by the run's seed and the update)."""

    def __init__(self, net, random_key: float, updates: int, seed: int):
        self.net, self.random_key, self.updates, self.seed = net, random_key, updates, seed
        self.size = InputSize(net.height, net.width)
        self.count = 0

    def check(self, spec) -> None:
        """Refuse, before training, sizes it could draw that the network cannot run at (resized's
        shape rules) or that exceed the default budget: a NetcfgError naming the size and the
        located problem."""
        coefficient = scale_coefficient(self.random_key)
        top = max(coefficient, 1 / coefficient)
        n = self.net
        ends = ((1 / top, False), (top, False), (1.0, True))
        for height, width in {scaled_size(n.width, n.height, coefficient, f, n.resize_step, last) for f, last in ends}:
            try:
                check_budget(resized(spec, (spec.input_shape[0], height, width)), DEFAULT_BUDGET)
            except CfgError as exc:
                message = f"random={self.random_key:g}: multi-scale training would reach {width} x {height}: {exc}"
                raise NetcfgError(message) from None

    def before_update(self, update: int, first: bool) -> tuple[int, int] | None:
        """The (height, width) drawn before `update` (`first`: no loss averaged yet), or None."""
        drawn = None
        if self.count % RESIZE_EVERY == 0:
            largest = first or update > self.updates - LAST_UPDATES_AT_MAX
            drawn = draw_size(self.net, self.random_key, largest, random.Random(hash((self.seed, update))))
            self.size.current = drawn
        self.count += 1
        return drawn


def scale_coefficient(random_key: float) -> float:
    """The largest scale factor: 1.4 for `random=1`, else the value itself."""
    return 1.4 if random_key == 1 else random_key


def draw_size(net, random_key: float, largest: bool, rng: random.Random) -> tuple[int, int]:
    """The (height, width) darknet's resize picks with a fresh factor from `rng` (rand_scale), or the
    largest size when `largest`. Every process of a run must seed `rng` alike, to agree on it."""
    coefficient = scale_coefficient(random_key)
    factor = rand_scale(coefficient, rng)
    return scaled_size(net.width, net.height, coefficient, factor, net.resize_step, largest)


def scaled_size(
    width: int, height: int, coefficient: float, factor: float, step: int, largest: bool
) -> tuple[int, int]:
    """(height, width): detector.c's dim_h, dim_w for a drawn `factor`, round(factor·size/step + 1)·step
    (float32, halves away from zero); the cfg's own size when a factor under 1 would grow it, the
    largest (the coefficient's) when `largest`, at least one step."""
    dim_w, dim_h = _rounded(factor, width, step), _rounded(factor, height, step)
    if np.float32(factor) < 1 and (dim_w > width or dim_h > height):
        dim_w, dim_h = width, height
    if largest:
        dim_w, dim_h = _rounded(coefficient, width, step), _rounded(coefficient, height, step)
    return max(dim_h, step), max(dim_w, step)


def _rounded(factor: float, size: int, step: int) -> int:
    """roundl(factor·size/step + 1)·step in C's float32, halves away from zero (all positive)."""
    value = np.float32(factor) * np.float32(size) / np.float32(step) + np.float32(1)
    return math.floor(float(value) + 0.5) * step
