"""Darknet layers against literal transcriptions of darknet's C forward functions."""

import math

import pytest
import torch
from darknet_ref import FLT_MAX, assert_close, batchnorm, blur, build, conv, flat, maxpool, output, softmax

import netcfg

torch.manual_seed(0)


def randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))


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


# ---------------------------------------------------------------- pooling


@pytest.mark.parametrize(
    "keys, size, stride, pad",
    [
        ("size=2\nstride=1", 2, (1, 1), 1),
        ("size=2\nstride=2", 2, (2, 2), 1),
        ("size=3\nstride=2", 3, (2, 2), 2),
        ("size=3\nstride=2\npadding=1", 3, (2, 2), 1),
        ("size=3\nstride_x=1\nstride_y=2\npadding=4", 3, (2, 1), 4),
        ("stride=2", 2, (2, 2), 1),
    ],
)
def test_maxpool_pads_with_minus_infinity_left_top_first(keys, size, stride, pad):
    model = build(f"[maxpool]\n{keys}\n", c=2, h=7, w=6)
    x = randn(2, 2, 7, 6) - 5  # all negative: a zero pad would win
    want, oh, ow = [], 0, 0
    for b in range(2):
        res, oh, ow = maxpool(flat(x[b]), 2, 7, 6, size, *stride, pad)
        want += res
    out = output(model, x)
    assert tuple(out.shape[1:]) == model.spec.layers[0].shape == (2, oh, ow)
    assert_close(out, want)


def test_maxpool_depth_takes_the_max_over_channels_g_plus_k_times_out_channels():
    model = build("[maxpool]\nmaxpool_depth=1\nout_channels=3\nsize=2\nstride=2\n", c=7, h=3, w=4)
    x = randn(1, 7, 3, 4)
    xs, want = flat(x), []
    for g in range(3):
        for i in range(3):
            for j in range(4):
                best = -FLT_MAX
                for k in range(g, 7, 3):
                    best = max(best, xs[j + 4 * (i + 3 * k)])
                want.append(best)
    out = output(model, x)
    assert tuple(out.shape[1:]) == (3, 3, 4)
    assert_close(out, want)


@pytest.mark.parametrize("mode", [1, 2])
def test_maxpool_antialiasing_pools_at_stride_1_then_blurs(mode):
    model = build(f"[maxpool]\nsize=2\nstride=2\nantialiasing={mode}\n", c=2, h=8, w=7)
    x = randn(1, 2, 8, 7)
    pooled, ph, pw = maxpool(flat(x), 2, 8, 7, 2, 1, 1, 1)
    want, bh, bw = blur(pooled, 2, ph, pw, 2, 2, mode)
    out = output(model, x)
    assert tuple(out.shape[1:]) == model.spec.layers[0].shape == (2, bh, bw)
    assert_close(out, want)


@pytest.mark.parametrize("keys, size, stride, pad", [("size=3\nstride=2", 3, 2, 2), ("size=2\nstride=1", 2, 1, 1)])
def test_local_avgpool_averages_only_inside_the_image(keys, size, stride, pad):
    model = build(f"[local_avg]\n{keys}\n", c=2, h=5, w=6)
    x = randn(1, 2, 5, 6)
    xs, h, w = flat(x), 5, 6
    oh, ow = (h + pad - size) // stride + 1, (w + pad - size) // stride + 1
    off, want = -(pad // 2), []
    for k in range(2):
        for i in range(oh):
            for j in range(ow):
                total, count = 0.0, 0
                for n in range(size):
                    for m in range(size):
                        r, q = off + i * stride + n, off + j * stride + m
                        if 0 <= r < h and 0 <= q < w:
                            total += xs[q + w * (r + h * k)]
                            count += 1
                want.append(total / count)
    out = output(model, x)
    assert tuple(out.shape[1:]) == model.spec.layers[0].shape == (2, oh, ow)
    assert_close(out, want)


def test_avgpool_is_a_global_mean():
    model = build("[avg]\n", c=3, h=4, w=5)
    x = randn(2, 3, 4, 5)
    xs = flat(x)
    want = [sum(xs[(b * 3 + k) * 20 : (b * 3 + k + 1) * 20]) / 20 for b in range(2) for k in range(3)]
    out = output(model, x)
    assert tuple(out.shape[1:]) == (3, 1, 1)
    assert_close(out, want)


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


SHORTCUT_BODY = (
    "[convolutional]\nfilters=6\nsize=1\nactivation=linear\n"
    "[convolutional]\nfilters=2\nsize=1\nactivation=linear\n"
    "[convolutional]\nfilters=4\nsize=1\nactivation=linear\n"
    "[shortcut]\nfrom=-2,-3\nactivation=linear\n"
)


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


# ---------------------------------------------------------------- upsample, reorg


def upsample_cpu(inp, w, h, c, stride, forward, scale, out):
    """darknet's upsample_cpu, one image."""
    for k in range(c):
        for j in range(h * stride):
            for i in range(w * stride):
                in_index = k * w * h + (j // stride) * w + i // stride
                out_index = k * w * h * stride * stride + j * w * stride + i
                if forward:
                    out[out_index] = scale * inp[in_index]
                else:
                    inp[in_index] += scale * out[out_index]


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("channels_last", [False, True])
def test_upsample_repeats_each_pixel_times_scale(stride, channels_last):
    """NCHW and channels_last inputs (which stay channels_last) alike, into a tensor of its own."""
    model = build(f"[upsample]\nstride={stride}\nscale=0.5\n", c=2, h=2, w=3)
    x = randn(1, 2, 2, 3)
    want = [0.0] * (2 * 2 * stride * 3 * stride)
    upsample_cpu(flat(x), 3, 2, 2, stride, True, 0.5, want)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out = output(model, x)
    assert tuple(out.shape[1:]) == (2, 2 * stride, 3 * stride)
    assert out.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert out.data_ptr() != x.data_ptr()
    assert_close(out, want)


def test_negative_upsample_stride_sums_blocks_times_scale():
    model = build("[upsample]\nstride=-2\nscale=2\n", c=2, h=4, w=6)
    x = randn(1, 2, 4, 6)
    want = [0.0] * (2 * 2 * 3)
    upsample_cpu(want, 3, 2, 2, 2, False, 2.0, flat(x))
    out = output(model, x)
    assert tuple(out.shape[1:]) == model.spec.layers[0].shape == (2, 2, 3)
    assert_close(out, want)


def reorg_cpu(x, w, h, c, stride, forward):
    """darknet's reorg_cpu, one image, returning the output buffer."""
    out = [0.0] * (w * h * c)
    in_c = c // (stride * stride)
    for k in range(c):
        for j in range(h):
            for i in range(w):
                in_index = i + w * (j + h * k)
                c2 = k % in_c
                offset = k // in_c
                w2 = i * stride + offset % stride
                h2 = j * stride + offset // stride
                out_index = w2 + w * stride * (h2 + h * stride * c2)
                if forward:
                    out[out_index] = x[in_index]
                else:
                    out[in_index] = x[out_index]
    return out


@pytest.mark.parametrize(
    "section, reverse, shape, out_shape, call",
    [
        # forward_reorg_old_layer: reorg_cpu(input, l.w, l.h, l.c, batch, stride, reverse, output)
        ("reorg", 0, (8, 4, 6), (32, 2, 3), lambda x: reorg_cpu(x, 6, 4, 8, 2, 0)),
        ("reorg", 1, (8, 4, 6), (2, 8, 12), lambda x: reorg_cpu(x, 6, 4, 8, 2, 1)),
        # forward_reorg_layer: reorg_cpu(input, l.out_w, l.out_h, l.out_c, batch, stride, reverse, output)
        ("reorg3d", 0, (3, 4, 6), (12, 2, 3), lambda x: reorg_cpu(x, 3, 2, 12, 2, 0)),
        ("reorg3d", 1, (32, 2, 3), (8, 4, 6), lambda x: reorg_cpu(x, 6, 4, 8, 2, 1)),
    ],
)
def test_reorg_matches_darknets_reorg_cpu_element_order(section, reverse, shape, out_shape, call):
    model = build(f"[{section}]\nstride=2\nreverse={reverse}\n", *shape)
    x = randn(2, *shape)
    want = call(flat(x[0])) + call(flat(x[1]))
    out = output(model, x)
    assert tuple(out.shape[1:]) == model.spec.layers[0].shape == out_shape
    assert_close(out, want)


def test_reorg_is_not_the_plain_space_to_depth():
    model = build("[reorg]\nstride=2\n", 4, 4, 4)
    x = randn(1, 4, 4, 4)
    assert not torch.equal(output(model, x), torch.nn.functional.pixel_unshuffle(x, 2))


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


# ---------------------------------------------------------------- lrn, batchnorm, crop, empty


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


def test_cost_passes_through_and_is_never_the_default_output():
    """Darknet's get_network_output returns the last non-[cost] layer; so do we."""
    model = netcfg.build("[net]\nwidth=4\nheight=4\nchannels=3\n[avgpool]\n[softmax]\n[cost]\ntype=sse\n")
    x = torch.randn(2, 3, 4, 4)
    expected = torch.softmax(x.mean(dim=(2, 3)), dim=1).reshape(2, 3, 1, 1)
    assert model.spec.outputs == (1,)
    torch.testing.assert_close(model(x), expected)
