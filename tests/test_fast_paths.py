"""The forward's fast paths keep darknet's results: `[maxpool]` through `max_pool2d`'s own padding
(no padded copy where it gives darknet's windows), and activations applied in place to a layer's own
fresh output, never to a tensor another layer or the caller still holds, and never under autograd."""

from __future__ import annotations

import pytest
import torch
from darknet_ref import assert_close, build, flat, maxpool, output

import netcfg
from netcfg.modules import resample

#: (size, stride_y, stride_x, padding, height, width): SPP's symmetric pads, even and odd sizes at
#: stride 2, asymmetric strides, pads read on the right only, pads beyond half the window, windows
#: that read only padding (darknet's −FLT_MAX).
POOLS = [
    (5, 1, 1, 4, 7, 6),
    (9, 1, 1, 8, 5, 9),
    (2, 2, 2, 1, 8, 6),
    (2, 2, 2, 1, 7, 5),
    (3, 2, 2, 2, 7, 8),
    (3, 2, 1, 4, 6, 7),
    (2, 1, 1, 1, 5, 6),
    (3, 3, 3, 2, 8, 7),
    (4, 3, 2, 0, 9, 8),
    (3, 1, 2, 3, 6, 5),
    (1, 1, 1, 0, 4, 4),
    (2, 1, 1, 6, 4, 4),
    (3, 2, 2, 8, 5, 5),
]


@pytest.mark.parametrize(("size", "sy", "sx", "pad", "h", "w"), POOLS)
def test_maxpool_matches_darknets_loop(size, sy, sx, pad, h, w):
    model = build(f"[maxpool]\nsize={size}\nstride_x={sx}\nstride_y={sy}\npadding={pad}\n", c=2, h=h, w=w)
    x = torch.randn(1, 2, h, w) - 5  # all negative: a zero pad would win
    want, oh, ow = maxpool(flat(x[0]), 2, h, w, size, sy, sx, pad)
    out = output(model, x)
    assert tuple(out.shape[1:]) == (2, oh, ow)
    assert_close(out, want)
    graded = model(x.clone().requires_grad_(), return_layers=[-1])[-1]  # max_pool2d's path
    assert_close(graded.detach(), want)


#: (size, stride_y, stride_x, padding, height, width): small windows at every stride, SPP's large
#: ones (doubled windows with a remainder) at stride 1.
SLICED = [
    (size, *case) for case in [(1, 1, None, 7, 6), (2, 2, None, 8, 6), (2, 3, 1, 9, 11)] for size in (1, 2, 3, 5)
] + [(size, 1, 1, None, 7, 6) for size in (4, 6, 7, 9, 13)]


@pytest.mark.parametrize(("size", "sy", "sx", "pad", "h", "w"), SLICED)
def test_maxpool_slices_equal_max_pool2d_and_darknet(size, sy, sx, pad, h, w):
    """Inference takes the window-slice path (doubling windows at stride 1) on NCHW and channels_last
    tensors alike, autograd max_pool2d's: all give darknet's loop, and the slice path returns a
    tensor of its own in its input's memory format."""
    padding = "" if pad is None else f"padding={pad}\n"
    model = build(f"[maxpool]\nsize={size}\nstride_x={sx}\nstride_y={sy}\n{padding}", c=3, h=h, w=w)
    x = torch.randn(2, 3, h, w) - 5
    want, oh, ow = maxpool(flat(x[1]), 3, h, w, size, sy, sx, size - 1 if pad is None else pad)
    slices = output(model, x)
    assert resample._slices_pay(x) and slices.data_ptr() != x.data_ptr()
    assert_close(slices[1], want)
    last = x.contiguous(memory_format=torch.channels_last)
    assert resample._slices_pay(last)
    with torch.no_grad():
        from_last = model.layers[0](last)  # the layer itself: the network returns its outputs contiguous
    assert torch.equal(from_last, slices) and from_last.is_contiguous(memory_format=torch.channels_last)
    graded = x.clone().requires_grad_()
    assert not resample._slices_pay(graded)
    assert torch.equal(model(graded, return_layers=[-1])[-1].detach(), slices)


@pytest.mark.parametrize(("size", "stride", "h"), [(5, 1, 13), (13, 1, 13), (2, 2, 26)])
def test_maxpool_makes_no_padded_copy_where_max_pool2d_pads(monkeypatch, size, stride, h):
    model = build(f"[maxpool]\nsize={size}\nstride={stride}\n", c=2, h=h, w=h)

    def refuse(*args, **kwargs):
        raise AssertionError("padded explicitly")

    monkeypatch.setattr(resample.F, "pad", refuse)
    model(torch.randn(1, 2, h, h, requires_grad=True))  # autograd: max_pool2d's path


CONV = "[convolutional]\nfilters=4\nsize=3\npad=1\nbatch_normalize={bn}\nactivation={act}\n"


@pytest.mark.parametrize("act", ["leaky", "relu", "logistic", "swish", "mish"])
@pytest.mark.parametrize("bn", [0, 1])
def test_in_place_activation_equals_the_plain_one(act, bn):
    model = build(CONV.format(bn=bn, act=act) + "[route]\nlayers=-1,0\n", c=3)
    layer = model.layers[0]
    x = torch.randn(2, 3, 8, 8)
    plain = layer.act.__class__()  # the same activation, never in place
    with torch.no_grad():
        y = layer.conv(x)
        want = plain(layer.bn(y) if layer.bn is not None else y)
        kept = x.clone()
        got = model(x, return_layers=[0, 1])
    assert torch.equal(x, kept)
    torch.testing.assert_close(got[0], want, rtol=0, atol=0)
    torch.testing.assert_close(got[1], torch.cat([want, want], 1), rtol=0, atol=0)


@pytest.mark.parametrize("act", ["leaky", "mish", "logistic"])
def test_gradients_are_those_of_the_plain_activation(act):
    torch.manual_seed(0)
    model = netcfg.build("[net]\nwidth=8\nheight=8\nchannels=3\n" + CONV.format(bn=1, act=act)).train()
    x = torch.randn(2, 3, 8, 8)
    layer = model.layers[0]
    plain = layer.act.__class__()
    grads = []
    for act_module in (layer.act, plain):
        layer.act = act_module
        model.zero_grad()
        model(x).square().sum().backward()
        grads.append(layer.conv.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_shortcut_inputs_survive_in_place_activations():
    cfg = "[net]\nwidth=8\nheight=8\nchannels=4\n" + CONV.format(bn=1, act="leaky")
    cfg += CONV.format(bn=1, act="leaky") + "[shortcut]\nfrom=-2\nactivation=linear\n"
    model = build(cfg.split("\n", 4)[4], c=4)
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        outs = model(x, return_layers=[0, 1, 2])
        alone = model.layers[0](x)
    torch.testing.assert_close(outs[0], alone, rtol=0, atol=0)
    torch.testing.assert_close(outs[2], outs[0] + outs[1], rtol=0, atol=0)
