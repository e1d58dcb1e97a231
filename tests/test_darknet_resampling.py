"""Darknet's layers that change the spatial size (pooling, [upsample], [reorg]) against literal
transcriptions of darknet's C forward functions (`darknet_ref`)."""

import pytest
import torch
from darknet_ref import FLT_MAX, assert_close, blur, build, flat, maxpool, output, randn

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
    with torch.no_grad():
        out = model.layers[0](x)  # the layer itself: the network returns its outputs contiguous
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
