"""Darknet's layers that combine earlier layers' outputs ([route], [shortcut], [scale_channels],
[sam]) against literal transcriptions of darknet's C forward functions (`darknet_ref`)."""

import math

import pytest
import torch
from darknet_ref import SHORTCUT_BODY, assert_close, build, flat, randn

torch.manual_seed(0)


# ---------------------------------------------------------------- route, shortcut


def test_route_slices_group_id_of_each_input_then_concatenates():
    body = (
        "[convolutional]\nfilters=4\nsize=1\nactivation=linear\n"
        "[convolutional]\nfilters=6\nsize=1\nactivation=linear\n"
        "[route]\nlayers=-1,-2\ngroups=2\ngroup_id=1\n"
    )
    model = build(body, c=2, h=3, w=3)
    x = randn(1, 2, 3, 3)
    outs = model(x, return_layers=[0, 1, 2])
    a, b = flat(outs[1]), flat(outs[0])
    want = a[len(a) // 2 :] + b[len(b) // 2 :]  # part_input_size · group_id of each flat input
    assert tuple(outs[2].shape[1:]) == model.spec.layers[2].shape == (5, 3, 3)
    assert_close(outs[2], want)


def shortcut_reference(inp, others, weights, normalization, layer_step):
    """darknet's shortcut_multilayer_cpu for one image (src_outputs = len(inp))."""
    src_outputs, n = len(inp), len(others)
    out = []
    for src_i in range(src_outputs):
        ws = [1.0] * (n + 1)
        if weights:
            step = src_outputs // layer_step
            ws = [weights[src_i // step + i * layer_step] for i in range(n + 1)]
        if weights and normalization == "relu":
            total = 0.0001 + sum(max(w, 0.0) for w in ws)
            ws = [max(w, 0.0) / total for w in ws]
        elif weights and normalization == "softmax":
            max_val = max(ws)
            total = 0.0001 + sum(math.exp(w - max_val) for w in ws)
            ws = [math.exp(w - max_val) / total for w in ws]
        value = inp[src_i] * ws[0]
        for i, add in enumerate(others):
            if src_i < len(add):
                value += add[src_i] * ws[i + 1]
        out.append(value)
    return out


@pytest.mark.parametrize(
    "keys, normalization",
    [
        ("", None),
        ("weights_type=per_feature", None),
        ("weights_type=per_layer\nweights_normalization=relu", "relu"),
        ("weights_type=per_feature\nweights_normalization=softmax", "softmax"),
        ("weights_type=per_channel\nweights_normalization=avg_relu", "relu"),
        ("weights_type=per_channel\nweights_normalization=softmax", "softmax"),
        ("weights_type=per_channel", None),
    ],
)
def test_shortcut_adds_overlapping_channels_with_darknets_weights(keys, normalization):
    model = build(SHORTCUT_BODY + keys + "\n", c=3, h=2, w=3)
    shortcut = model.layers[3]
    if shortcut.weights is not None:
        torch.nn.init.normal_(shortcut.weights)
    x = randn(1, 3, 2, 3)
    outs = model(x, return_layers=[0, 1, 2, 3])
    weights = flat(shortcut.weights) if shortcut.weights is not None else None
    layer_step = 4 if "per_channel" in keys else 1
    want = shortcut_reference(flat(outs[2]), [flat(outs[1]), flat(outs[0])], weights, normalization, layer_step)
    assert tuple(outs[3].shape[1:]) == model.spec.layers[3].shape == (4, 2, 3)
    assert_close(outs[3], want)


def test_shortcut_activation_is_applied_after_the_sum():
    model = build(SHORTCUT_BODY.replace("from=-2,-3\nactivation=linear", "from=-2,-3\nactivation=relu6"), c=3, h=2, w=3)
    x = randn(1, 3, 2, 3) * 10
    outs = model(x, return_layers=[0, 1, 2, 3])
    summed = shortcut_reference(flat(outs[2]), [flat(outs[1]), flat(outs[0])], None, None, 1)
    assert max(summed) > 6 and min(summed) < 0
    assert_close(outs[3], [min(max(v, 0.0), 6.0) for v in summed])


# ---------------------------------------------------------------- scale_channels, sam


def test_scale_channels_multiplies_each_channel_then_activates():
    body = (
        "[convolutional]\nfilters=3\nsize=1\nactivation=linear\n"
        "[avgpool]\n"
        "[scale_channels]\nfrom=-2\nactivation=leaky\n"
    )
    model = build(body, c=2, h=2, w=3)
    x = randn(1, 2, 2, 3)
    outs = model(x, return_layers=[0, 1, 2])
    inp, frm = flat(outs[1]), flat(outs[0])
    want = [inp[i // 6] * frm[i] for i in range(18)]  # input[i / channel_size] * from_output[i]
    assert tuple(outs[2].shape[1:]) == (3, 2, 3)
    assert_close(outs[2], [v if v > 0 else 0.1 * v for v in want])


def test_scale_channels_scale_wh_multiplies_each_pixel():
    body = (
        "[convolutional]\nfilters=3\nsize=1\nactivation=linear\n"
        "[convolutional]\nfilters=1\nsize=1\nactivation=logistic\n"
        "[scale_channels]\nfrom=-2\nscale_wh=1\n"
    )
    model = build(body, c=2, h=2, w=3)
    x = randn(2, 2, 2, 3)
    outs = model(x, return_layers=[0, 1, 2])
    inp, frm = flat(outs[1]), flat(outs[0])
    channel_size, batch_size = 6, 18
    want = [inp[i % channel_size + (i // batch_size) * channel_size] * frm[i] for i in range(36)]
    assert_close(outs[2], want)


def test_sam_multiplies_elementwise_then_activates():
    body = (
        "[convolutional]\nfilters=3\nsize=1\nactivation=linear\n"
        "[convolutional]\nfilters=3\nsize=1\nactivation=logistic\n"
        "[sam]\nfrom=-2\nactivation=swish\n"
    )
    model = build(body, c=2, h=2, w=3)
    x = randn(1, 2, 2, 3)
    outs = model(x, return_layers=[0, 1, 2])
    prod = [a * b for a, b in zip(flat(outs[1]), flat(outs[0]))]
    assert_close(outs[2], [v / (1 + math.exp(-v)) for v in prod])
