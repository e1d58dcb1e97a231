"""What parse promises is what build runs: every layer's built output shape against its spec shape,
and both against darknet's output-size formulas transcribed here from its C sources."""

from __future__ import annotations

import itertools

import pytest
import torch

import netcfg
from netcfg.summary import summarize


def darknet_conv_out(n: int, size: int, stride: int, pad: int) -> int:
    """convolutional_layer.c, convolutional_out_height/width: (l.h + 2*l.pad - l.size) / l.stride_y + 1."""
    return (n + 2 * pad - size) // stride + 1


def darknet_im2col_out(n: int, size: int, stride: int, pad: int, dilation: int) -> int:
    """im2col.c, im2col_cpu_ext called with pad·dilation: the positions darknet actually convolves."""
    padding = pad * dilation
    return (n + 2 * padding - (dilation * (size - 1) + 1)) // stride + 1


def darknet_pool_out(n: int, size: int, stride: int, padding: int) -> int:
    """maxpool_layer.c: (w + padding - size) / stride + 1."""
    return (n + padding - size) // stride + 1


def built_shapes(model: netcfg.Network) -> list[tuple[int, ...]]:
    """Each layer's output (C, H, W) when the built network runs one image."""
    shapes = []
    handles = [
        layer.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:]))) for layer in model.layers
    ]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *model.spec.input_shape))
    for handle in handles:
        handle.remove()
    return shapes


def net(h: int, w: int, c: int = 3) -> str:
    return f"[net]\nwidth={w}\nheight={h}\nchannels={c}\n"


def assert_promise_is_what_runs(cfg: str) -> netcfg.Network:
    model = netcfg.build(cfg)
    assert built_shapes(model) == [layer.shape for layer in model.spec.layers]
    return model


def test_dilated_conv_whose_width_darknet_sizes_differently_is_refused_at_the_key():
    cfg = net(65, 64) + "[convolutional]\nfilters=2\nsize=3\nstride=3\ndilation=2\n"
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.parse(cfg)
    (item,) = exc.value.items
    assert (item.line, item.key) == (9, "dilation")
    assert "21×20" in item.message and "21×21" in item.message


STRIDES = ["stride=1", "stride=3", "stride_x=2\nstride_y=3", "stride_x=3\nstride_y=1"]
PADS = ["pad=1", "padding=0", "padding=1", "padding=2"]


def strides_of(keys: str) -> tuple[int, int]:
    values = dict(line.split("=") for line in keys.split("\n"))
    stride = int(values.get("stride", 1))
    return int(values.get("stride_y", stride)), int(values.get("stride_x", stride))


@pytest.mark.parametrize("h, w", [(65, 64), (64, 65), (31, 33)])
@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_convolutional_promises_darknets_size_or_refuses_what_darknet_misreads(h, w, size):
    for dilation, stride_keys, pad_keys in itertools.product([1, 2, 3], STRIDES, PADS):
        keys = f"filters=2\nsize={size}\n{stride_keys}\n{pad_keys}\ndilation={dilation}\n"
        cfg = net(h, w) + f"[convolutional]\n{keys}"
        d = 1 if size == 1 else dilation
        pad = size // 2 if pad_keys == "pad=1" else int(pad_keys.split("=")[1])
        (sy, sx) = strides_of(stride_keys)
        darknet = (darknet_conv_out(h, size, sy, pad), darknet_conv_out(w, size, sx, pad))
        convolved = (darknet_im2col_out(h, size, sy, pad, d), darknet_im2col_out(w, size, sx, pad, d))
        if darknet != convolved:
            with pytest.raises(netcfg.CfgError) as exc:
                netcfg.parse(cfg)
            assert [item.key for item in exc.value.items] == ["dilation"], keys
            assert exc.value.items[0].line == 5 + keys.count("\n"), keys
        elif min(darknet) <= 0:
            with pytest.raises(netcfg.CfgError):
                netcfg.parse(cfg)
        else:
            model = assert_promise_is_what_runs(cfg)
            assert model.spec.layers[0].shape == (2, *darknet), keys


@pytest.mark.parametrize("antialiasing", [1, 2])
@pytest.mark.parametrize("stride_keys", STRIDES)
def test_antialiased_conv_and_maxpool_promise_the_blurred_size(antialiasing, stride_keys):
    sy, sx = strides_of(stride_keys)
    blur_size, blur_pad = (3, 1) if antialiasing == 1 else (2, 0)  # make_convolutional_layer's blur layer
    cfg = (
        net(23, 20)
        + f"[convolutional]\nfilters=4\nsize=3\npad=1\ndilation=2\n{stride_keys}\nantialiasing={antialiasing}\n"
        + f"[maxpool]\nsize=2\n{stride_keys}\nantialiasing={antialiasing}\n"
    )
    model = assert_promise_is_what_runs(cfg)
    h, w = 23, 20  # the stride-1 conv with pad=1 keeps the size, the stride-1 pool (padding 1) too
    for layer in model.spec.layers:
        h, w = darknet_conv_out(h, blur_size, sy, blur_pad), darknet_conv_out(w, blur_size, sx, blur_pad)
        assert layer.shape[1:] == (h, w)


@pytest.mark.parametrize("kind", ["maxpool", "local_avgpool"])
@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_pools_promise_darknets_size(kind, size):
    for stride_keys, padding in itertools.product(STRIDES, [None, 0, 1, 3]):
        keys = f"size={size}\n{stride_keys}\n" + ("" if padding is None else f"padding={padding}\n")
        model = assert_promise_is_what_runs(net(13, 10) + f"[{kind}]\n{keys}")
        sy, sx = strides_of(stride_keys)
        total = size - 1 if padding is None else padding
        expected = (darknet_pool_out(13, size, sy, total), darknet_pool_out(10, size, sx, total))
        assert model.spec.layers[0].shape == (3, *expected), keys


VARIANTS = ["dcn", "acb", "refconv", "odconv", "coordconv"]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("stride_keys", STRIDES)
def test_conv_variants_promise_what_their_modules_run(variant, stride_keys):
    for size, dilation, pad_keys, groups in itertools.product(
        [1, 3], [1, 2], ["pad=1", "padding=0", "padding=2"], [1, 2]
    ):
        keys = f"filters=4\nsize={size}\n{stride_keys}\n{pad_keys}\ndilation={dilation}\ngroups={groups}\n"
        channels = 6 if variant == "coordconv" else 4  # coordconv's groups count its two coordinate channels
        model = assert_promise_is_what_runs(net(17, 14, channels) + f"[{variant}]\n{keys}")
        pad = size // 2 if pad_keys == "pad=1" else int(pad_keys.split("=")[1])
        if darknet_im2col_out(17, size, 1, pad, dilation) == darknet_conv_out(17, size, 1, pad):
            sy, sx = strides_of(stride_keys)
            expected = (darknet_conv_out(17, size, sy, pad), darknet_conv_out(14, size, sx, pad))
            assert model.spec.layers[0].shape == (4, *expected), keys


@pytest.mark.parametrize(
    "body",
    [
        "[ghost]\nfilters=6\nsize=3\nstride=2\n",
        "[ghost]\nfilters=6\nsize=2\nstride=3\n",
        "[blurpool]\nfilt_size=4\nstride=3\npad_type=zero\n",
        "[blaze]\nfilters=16\nfilters2=20\nstride=2\n",
        "[dwconv]\nfilters=8\nsize=3\nstride=3\ndilation=2\n",
        "[dwconv]\nfilters=8\nsize=4\nstride=2\ndilation=3\n",
        "[mixconv]\nfilters=8\nsizes=3,5\nstride=3\n",
        "[splat]\nfilters=8\nsize=2\nstride=2\n",
        "[sk]\nfilters=8\ngroups=2\nmin_dim=4\nstride=3\n",
        "[bottleneck]\nfilters=8\nstride=3\n",
        "[basicblock]\nfilters=8\nstride=2\n",
        "[rfb]\nfilters=16\nstride=2\n",
        "[rfbs]\nfilters=16\nstride=3\n",
    ],
)
def test_strided_blocks_promise_what_their_modules_run(body):
    assert_promise_is_what_runs(net(12, 10, 16) + body)


def test_summary_shows_each_sections_window_as_darknet_prints_it():
    cfg = net(16, 16, 4) + (
        "[convolutional]\nfilters=4\nsize=3\nstride=2\npad=1\ndilation=2\n"
        "[convolutional]\nfilters=4\nsize=3\nstride_x=2\nstride_y=1\npad=1\n"
        "[maxpool]\nsize=2\nstride=2\n"
        "[lrn]\nsize=3\n"
    )
    rows = summarize(netcfg.build(cfg)).layers
    assert [row.geometry for row in rows] == ["3x3/2(2)", "3x3/2x1", "2x2/2", ""]
