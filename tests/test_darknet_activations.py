"""Every darknet activation against the formulas of darknet's activations.h / activations.c
(the intended functions: relu6 clamps to [0, 6], swish and mish apply in every layer)."""

import math
import typing

import pytest
import torch
from darknet_ref import assert_close, build, flat, logistic, output

from netcfg.values import Activation


def softplus(x: float, threshold: float = 20) -> float:
    if x > threshold:
        return x
    if x < -threshold:
        return math.exp(x)
    return math.log(math.exp(x) + 1)


def stair(x: float) -> float:
    n = math.floor(x)
    if math.fmod(n, 2) == 0:  # C's n % 2 on an int
        return math.floor(x / 2)
    return (x - n) + math.floor(x / 2)


def plse(x: float) -> float:
    if x < -4:
        return 0.01 * (x + 4)
    if x > 4:
        return 0.01 * (x - 4) + 1
    return 0.125 * x + 0.5


def lhtan(x: float) -> float:
    if x < 0:
        return 0.001 * x
    if x > 1:
        return 0.001 * (x - 1) + 1
    return x


def hard_mish(x: float) -> float:
    if x > 0:
        return x
    if x > -2:
        return x * x / 2 + x
    return 0.0


SCALAR = {
    "linear": lambda x: x,
    "logistic": logistic,
    "loggy": lambda x: 2 / (1 + math.exp(-x)) - 1,
    "relu": lambda x: x * (x > 0),
    "elu": lambda x: (x >= 0) * x + (x < 0) * (math.exp(x) - 1),
    "selu": lambda x: (x >= 0) * 1.0507 * x + (x < 0) * 1.0507 * 1.6732 * (math.exp(x) - 1),
    "gelu": lambda x: 0.5 * x * (1 + math.tanh(0.797885 * x + 0.035677 * x**3)),
    "relie": lambda x: x if x > 0 else 0.01 * x,
    "ramp": lambda x: x * (x > 0) + 0.1 * x,
    "leaky": lambda x: x if x > 0 else 0.1 * x,
    "revleaky": lambda x: x if x > 0 else 0.1 * x,
    "tanh": lambda x: 2 / (1 + math.exp(-2 * x)) - 1,
    "plse": plse,
    "stair": stair,
    "hardtan": lambda x: -1.0 if x < -1 else 1.0 if x > 1 else x,
    "lhtan": lhtan,
    "relu6": lambda x: min(max(x, 0.0), 6.0),
    "swish": lambda x: x * logistic(x),
    "mish": lambda x: x * math.tanh(softplus(x)),
    "hard_mish": hard_mish,
}

VALUES = [-30.0, -25.0, -6.5, -4.5, -3.0, -2.5, -1.5, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5]
VALUES += [3.0, 3.5, 4.5, 5.5, 6.0, 6.5, 7.0, 21.0, 25.0, -0.75, 0.75, -1.25, 1.25, -2.0, 0.1]
X = torch.tensor(VALUES).reshape(1, 2, 4, 4)


def test_every_activation_name_is_covered():
    family = {"normalize_channels", "normalize_channels_softmax", "normalize_channels_softmax_maxval"}
    assert set(typing.get_args(Activation)) == set(SCALAR) | family


@pytest.mark.parametrize("name", sorted(SCALAR))
def test_activation_layer_matches_darknet_formula(name):
    model = build(f"[activation]\nactivation={name}\n", c=2, h=4, w=4)
    assert_close(output(model, X), [SCALAR[name](v) for v in VALUES], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["relu6", "swish", "mish", "gelu"])
def test_convolutional_and_shortcut_use_the_same_functions(name):
    body = (
        "[conv]\nfilters=2\nsize=1\nactivation=linear\n"
        f"[conv]\nfilters=2\nsize=1\nactivation={name}\n[shortcut]\nfrom=-2\nactivation={name}\n"
    )
    model = build(body, c=2, h=4, w=4)
    with torch.no_grad():
        for layer in model.layers[:2]:
            layer.conv.weight.copy_(torch.eye(2).reshape(2, 2, 1, 1))
            layer.conv.bias.zero_()
    first = [SCALAR[name](v) for v in VALUES]
    second = [SCALAR[name](a + b) for a, b in zip(first, VALUES)]
    assert_close(output(model, X, 1), first, rtol=1e-5, atol=1e-6)
    assert_close(output(model, X, 2), second, rtol=1e-5, atol=1e-6)


def normalize_channels(x, channels, wh, mode):
    """activate_array_normalize_channels(_softmax) for one image."""
    out = [0.0] * len(x)
    for i in range(wh):
        vals = [x[i + k * wh] for k in range(channels)]
        total = 0.0001
        if mode == "relu":
            total += sum(v for v in vals if v > 0)
            res = [v / total if v > 0 else 0.0 for v in vals]
        else:
            max_val = max(vals) if mode == "maxval" else 0.0
            total += sum(math.exp(v - max_val) for v in vals)
            res = [math.exp(v - max_val) / total for v in vals]
        for k in range(channels):
            out[i + k * wh] = res[k]
    return out


@pytest.mark.parametrize(
    "name, mode",
    [
        ("normalize_channels", "relu"),
        ("normalize_channels_softmax", "zero"),
        ("normalize_channels_softmax_maxval", "maxval"),
    ],
)
def test_normalize_channels_family(name, mode):
    model = build(f"[activation]\nactivation={name}\n", c=3, h=2, w=3)
    x = torch.randn(2, 3, 2, 3, generator=torch.Generator().manual_seed(3)) * 2
    want = normalize_channels(flat(x[0]), 3, 6, mode) + normalize_channels(flat(x[1]), 3, 6, mode)
    assert_close(output(model, x), want)
