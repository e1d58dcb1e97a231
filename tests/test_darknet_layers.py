"""Darknet's [convolutional], [connected], normalising and pass-through layers against literal
transcriptions of darknet's C forward functions (`darknet_ref`), and gradients through them."""

import math

import pytest
import torch
from darknet_ref import SHORTCUT_BODY, assert_close, batchnorm, blur, build, conv, flat, output, randn, softmax

import netcfg

torch.manual_seed(0)


# ---------------------------------------------------------------- [convolutional]


@pytest.mark.parametrize(
    "keys, stride, pad, dilation, groups",
    [
        ("size=3\nstride=1\npad=1", (1, 1), 1, 1, 1),
        ("size=3\nstride=2\npad=1", (2, 2), 1, 1, 1),
        ("size=3\nstride_x=2\nstride_y=1\npadding=2", (1, 2), 2, 1, 1),
        ("size=3\nstride=1\npad=1\ndilation=2", (1, 1), 1, 2, 1),
        ("size=3\nstride=1\npad=1\ngroups=2", (1, 1), 1, 1, 2),
        ("size=1\nstride=1\ndilation=3", (1, 1), 0, 1, 1),
    ],
)
def test_convolutional_matches_darknet_im2col(keys, stride, pad, dilation, groups):
    model = build(f"[convolutional]\nfilters=4\nactivation=linear\n{keys}\n", c=4, h=7, w=6)
    conv_layer = model.layers[0].conv
    torch.nn.init.normal_(conv_layer.bias)
    x = randn(1, 4, 7, 6)
    size = conv_layer.kernel_size[0]
    want, oh, ow = conv(
        flat(x), 4, 7, 6, flat(conv_layer.weight), flat(conv_layer.bias), 4, size, *stride, pad, dilation, groups
    )
    out = output(model, x)
    assert tuple(out.shape[1:]) == model.spec.layers[0].shape == (4, oh, ow)
    assert_close(out, want)


def test_convolutional_batch_norm_uses_eps_1e5_and_bias_after_scale():
    model = build("[convolutional]\nfilters=3\nsize=1\nbatch_normalize=1\nactivation=linear\n", c=2, h=3, w=3)
    layer = model.layers[0]
    for t in (layer.bn.weight, layer.bn.bias, layer.bn.running_mean):
        torch.nn.init.normal_(t)
    layer.bn.running_var.uniform_(1e-6, 1e-4)  # small variances make eps visible
    x = randn(1, 2, 3, 3)
    raw, _, _ = conv(flat(x), 2, 3, 3, flat(layer.conv.weight), [0.0] * 3, 3, 1, 1, 1, 0)
    bn = layer.bn
    want = batchnorm(raw, 9, flat(bn.weight), flat(bn.bias), flat(bn.running_mean), flat(bn.running_var))
    assert_close(output(model, x), want, rtol=1e-4)
    assert layer.darknet_tensors()[0] is layer.bn.bias and layer.darknet_tensors()[1] is layer.bn.weight


@pytest.mark.parametrize("mode, stride", [(1, 2), (2, 2), (1, 1), (2, 1)])
def test_convolutional_antialiasing_is_a_stride_1_conv_then_darknets_blur(mode, stride):
    model = build(
        f"[convolutional]\nfilters=3\nsize=3\nstride={stride}\npad=1\nactivation=leaky\nantialiasing={mode}\n",
        c=2,
        h=9,
        w=8,
    )
    layer = model.layers[0]
    x = randn(1, 2, 9, 8)
    raw, oh, ow = conv(flat(x), 2, 9, 8, flat(layer.conv.weight), flat(layer.conv.bias), 3, 3, 1, 1, 1)
    activated = [v if v > 0 else 0.1 * v for v in raw]
    want, bh, bw = blur(activated, 3, oh, ow, stride, stride, mode)
    out = output(model, x)
    assert tuple(out.shape[1:]) == model.spec.layers[0].shape == (3, bh, bw)
    assert_close(out, want)
    assert len(layer.darknet_tensors()) == 2 and len(list(model.parameters())) == 2


@pytest.mark.parametrize("keys", ["xnor=1", "binary=1"])
def test_convolutional_xnor_and_binary_binarise_like_darknet(keys):
    model = build(f"[convolutional]\nfilters=2\nsize=3\npad=1\nactivation=linear\ngroups=2\n{keys}\n", c=2, h=5, w=5)
    layer = model.layers[0]
    x = randn(1, 2, 5, 5)
    weights = flat(layer.conv.weight)
    per_filter = len(weights) // 2
    binary = []
    for f in range(2):
        chunk = weights[f * per_filter : (f + 1) * per_filter]
        mean = sum(abs(v) for v in chunk) / per_filter
        binary += [mean if v > 0 else -mean for v in chunk]
    xnor = keys == "xnor=1"
    inputs = [1.0 if v > 0 else -1.0 for v in flat(x)] if xnor else flat(x)
    groups = 1 if xnor else 2
    want, _, _ = conv(inputs, 2, 5, 5, binary, flat(layer.conv.bias), 2, 3, 1, 1, 1, 1, groups)
    assert_close(output(model, x), want)
    assert layer.conv.groups == groups


def test_convolutional_bflops_follow_darknet():
    def bflops(keys):
        layer = build(f"[convolutional]\nfilters=8\nsize=3\npad=1\nstride=2\n{keys}\n", c=4, h=8, w=8).spec.layers[0]
        return layer.section.bflops(list(layer.input_shapes), layer.shape)

    assert bflops("") == 2 * 4 * 8 * 9 * 4 * 4 / 1e9
    assert bflops("antialiasing=1") == 2 * 4 * 8 * 9 * 8 * 8 / 1e9  # counted at the convolution's stride 1
    assert bflops("xnor=1") == 2 * 4 * 8 * 9 * 4 * 4 / 1e9 / 32


def test_cbn_implies_batch_normalize():
    layer = build("[convolutional]\nfilters=2\nsize=1\ncbn=1\n", c=2, h=2, w=2).layers[0]
    assert layer.bn is not None and layer.conv.bias is None


# ---------------------------------------------------------------- connected, dropout, softmax


@pytest.mark.parametrize("bn", [0, 1])
def test_connected_flattens_chw_and_applies_bn_then_bias(bn):
    model = build(f"[connected]\noutput=5\nactivation=leaky\nbatch_normalize={bn}\n", c=2, h=2, w=3)
    layer = model.layers[0]
    tensors = layer.darknet_tensors()
    for t in tensors:
        if t.dim() == 1:
            t.data.normal_()
    if bn:
        layer.bn.running_var.uniform_(0.5, 2)
    x = randn(2, 2, 2, 3)
    weights = flat(layer.linear.weight)
    biases = flat(tensors[0])
    xs, want = flat(x), []
    for b in range(2):
        for o in range(5):
            v = sum(xs[b * 12 + k] * weights[o * 12 + k] for k in range(12))
            if bn:
                scales, mean, var = flat(tensors[2]), flat(tensors[3]), flat(tensors[4])
                v = (v - mean[o]) / math.sqrt(var[o] + 0.00001) * scales[o]
            v += biases[o]
            want.append(v if v > 0 else 0.1 * v)
    out = output(model, x)
    assert tuple(out.shape[1:]) == model.spec.layers[0].shape == (5, 1, 1)
    assert_close(out, want, rtol=1e-4)
    assert [tuple(t.shape) for t in tensors] == [(5,), (5, 12)] + [(5,)] * 3 * bn


def test_dropout_passes_through_at_inference_and_accepts_dropblock_keys():
    model = build("[dropout]\nprobability=0.9\ndropblock=1\ndropblock_size_abs=3\n", c=2, h=4, w=4)
    x = randn(1, 2, 4, 4)
    assert torch.equal(output(model, x), x)
    assert model.spec.layers[0].section.extras == {"dropblock": "1", "dropblock_size_abs": "3"}


@pytest.mark.parametrize("groups, temperature", [(1, 1.0), (3, 1.0), (4, 0.5), (2, 3.0)])
def test_softmax_over_contiguous_groups_of_the_flat_input(groups, temperature):
    model = build(f"[soft]\ngroups={groups}\ntemperature={temperature}\n", c=2, h=2, w=3)
    x = randn(2, 2, 2, 3) * 3
    xs, n, want = flat(x), 12 // groups, []
    for b in range(2):
        for g in range(groups):
            want += softmax(xs[b * 12 + g * n : b * 12 + (g + 1) * n], temperature)
    out = output(model, x)
    assert tuple(out.shape[1:]) == (2, 2, 3)
    assert_close(out, want)


# ---------------------------------------------------------------- lrn, batchnorm, crop, empty, cost


@pytest.mark.parametrize("size, c", [(5, 7), (3, 4), (4, 6), (1, 3), (5, 3)])
def test_lrn_matches_darknets_running_sum(size, c):
    model = build(f"[lrn]\nsize={size}\nalpha=0.1\nbeta=0.75\nkappa=2\n", c=c, h=2, w=3)
    x = randn(1, c, 2, 3)
    xs, wh = flat(x), 6
    alpha, beta, kappa = 0.1, 0.75, 2.0
    squared = [v * v for v in xs]
    norms = [kappa] * wh + [0.0] * (wh * (c - 1))
    for k in range(size // 2):
        for p in range(wh):
            norms[p] += alpha * squared[wh * k + p]
    for k in range(1, c):
        for p in range(wh):
            norms[wh * k + p] = norms[wh * (k - 1) + p]
        prev = k - ((size - 1) // 2) - 1
        nxt = k + size // 2
        for p in range(wh):
            if prev >= 0:
                norms[wh * k + p] -= alpha * squared[wh * prev + p]
            if nxt < c:
                norms[wh * k + p] += alpha * squared[wh * nxt + p]
    want = [v * norms[i] ** -beta for i, v in enumerate(xs)]
    assert_close(output(model, x), want, rtol=1e-4)


def test_batchnorm_layer_normalises_with_rolling_statistics():
    model = build("[batchnorm]\n", c=3, h=2, w=2)
    layer = model.layers[0]
    bias, scale, mean, var = layer.darknet_tensors()
    for t in (bias, scale, mean):
        t.data.normal_()
    var.data.uniform_(0.1, 2)
    x = randn(1, 3, 2, 2)
    want = batchnorm(flat(x), 4, flat(scale), flat(bias), flat(mean), flat(var))
    assert_close(output(model, x), want, rtol=1e-4)
    assert scale is layer.bn.weight and bias is layer.bn.bias


@pytest.mark.parametrize("noadjust", [0, 1])
def test_crop_at_inference_takes_the_centre_and_rescales(noadjust):
    model = build(f"[crop]\ncrop_height=3\ncrop_width=2\nflip=1\nnoadjust={noadjust}\n", c=2, h=6, w=5)
    x = randn(1, 2, 6, 5)
    xs, h, w = flat(x), 6, 5
    dh, dw = (h - 3) // 2, (w - 2) // 2
    scale, trans = (1.0, 0.0) if noadjust else (2.0, -1.0)
    want = [xs[(j + dw) + w * ((i + dh) + h * c)] * scale + trans for c in range(2) for i in range(3) for j in range(2)]
    out = output(model, x)
    assert tuple(out.shape[1:]) == (2, 3, 2)
    assert_close(out, want)


@pytest.mark.parametrize("name", ["empty", "silence"])
def test_empty_passes_through(name):
    model = build(f"[{name}]\n", c=2, h=3, w=3)
    x = randn(1, 2, 3, 3)
    assert torch.equal(output(model, x), x)


def test_cost_passes_through_and_is_never_the_default_output():
    """Darknet's get_network_output returns the last non-[cost] layer; so do we."""
    model = netcfg.build("[net]\nwidth=4\nheight=4\nchannels=3\n[avgpool]\n[softmax]\n[cost]\ntype=sse\n")
    x = torch.randn(2, 3, 4, 4)
    expected = torch.softmax(x.mean(dim=(2, 3)), dim=1).reshape(2, 3, 1, 1)
    assert model.spec.outputs == (1,)
    torch.testing.assert_close(model(x), expected)


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize(
    "body",
    [
        "[convolutional]\nfilters=4\nsize=3\nstride=2\npad=1\nbatch_normalize=1\nantialiasing=1\nactivation=mish\n",
        "[convolutional]\nfilters=4\nsize=3\npad=1\nxnor=1\nactivation=linear\n",
        "[connected]\noutput=3\nbatch_normalize=1\nactivation=leaky\n",
        "[batchnorm]\n",
        SHORTCUT_BODY + "weights_type=per_channel\nweights_normalization=softmax\n",
    ],
)
def test_gradients_reach_every_parameter(body):
    model = build(body, c=3, h=6, w=6)
    model.train()
    out = model(randn(4, 3, 6, 6))
    (out * randn(*out.shape)).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
