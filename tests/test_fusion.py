"""`[asff]` and `[seb]`: shapes, recomputation from the modules' own weights, gradients, and the
size checks between their inputs."""

import pytest
import torch
import torch.nn.functional as F
from blockcheck import (
    assert_every_parameter_gets_gradient,
    bilinear_aligned,
    build,
    conv_bn,
    leaky,
    net_text,
    single_error,
)

import netcfg

#: Three pyramid levels after the input (C×H×W = 8×32×24): 2×32×24, 4×16×12, 6×8×6.
LEVELS = (
    "[convolutional]\nfilters=2\nsize=1\n"
    "[convolutional]\nfilters=4\nsize=3\nstride=2\npad=1\n"
    "[convolutional]\nfilters=6\nsize=3\nstride=2\npad=1\n"
)
LEVEL_SHAPES = [(6, 8, 6), (4, 16, 12), (2, 32, 24)]


def line_of(text: str, header: str, key: str) -> int:
    """The line of `key=` inside the last `header` section, or of the header when the key is absent."""
    lines = text.splitlines()
    start = len(lines) - lines[::-1].index(header)
    return next((i for i, ln in enumerate(lines[start:], start + 1) if ln.startswith(key + "=")), start)


def nearest_up(x, factor):
    return x.repeat_interleave(factor, dim=2).repeat_interleave(factor, dim=3)


def asff_reference(levels, sd, level):
    """ASFF: resize every level to `level` (1×1 conv + nearest up; 3×3/2 conv, max pool first for
    ×4), softmax over three 1×1-conv weight maps, weighted sum, 3×3 expand conv; leaky throughout."""
    resized = []
    for source, x in enumerate(levels):
        prefix = f"resize.{source}.conv"
        if source < level:
            x = nearest_up(conv_bn(x, sd, prefix, act=leaky), 2 ** (level - source))
        elif source > level:
            if source - level == 2:
                x = F.max_pool2d(x, 3, stride=2, padding=1)
            x = conv_bn(x, sd, prefix, stride=2, padding=1, act=leaky)
        resized.append(x)
    maps = torch.cat([conv_bn(x, sd, f"weight_convs.{i}", act=leaky) for i, x in enumerate(resized)], dim=1)
    logits = F.conv2d(maps, sd["weight_levels.weight"], sd["weight_levels.bias"])
    weights = torch.exp(logits) / torch.exp(logits).sum(dim=1, keepdim=True)
    fused = sum(x * weights[:, i : i + 1] for i, x in enumerate(resized))
    return conv_bn(fused, sd, "expand", padding=1, act=leaky)


@pytest.mark.parametrize("level", [0, 1, 2])
def test_asff_matches_functional_recomputation(level):
    model = build(LEVELS + f"[asff]\nlayers=2,1,0\nlevel={level}\nfilters=5\ncompress=3\n", c=8, h=32, w=24)
    assert model.spec.layers[-1].shape == (5, *LEVEL_SHAPES[level][1:])
    torch.manual_seed(level)
    levels = [torch.randn(2, *shape, dtype=torch.float64) for shape in LEVEL_SHAPES]
    block = model.layers[3]
    with torch.no_grad():
        out = block(*levels)
    expected = asff_reference(levels, block.state_dict(), level)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)


def test_asff_takes_channels_from_its_inputs():
    block = netcfg.build(net_text(LEVELS + "[asff]\nlayers=-1,-2,-3\nlevel=1\nfilters=7\n", h=32, w=24)).layers[3]
    sd = block.state_dict()
    assert sd["resize.0.conv.conv.weight"].shape == (4, 6, 1, 1)
    assert sd["resize.2.conv.conv.weight"].shape == (4, 2, 3, 3)
    assert sd["weight_convs.0.conv.weight"].shape == (16, 4, 1, 1)
    assert sd["weight_levels.weight"].shape == (3, 48, 1, 1)
    assert sd["expand.conv.weight"].shape == (7, 4, 3, 3)


def test_asff_inside_a_network_reads_the_right_layers():
    model = netcfg.build(net_text(LEVELS + "[asff]\nlayers=-1,-2,-3\nlevel=2\nfilters=3\n", h=32, w=24))
    x = torch.randn(1, 8, 32, 24)
    with torch.no_grad():
        outs = model(x, return_layers=[0, 1, 2, 3])
        assert torch.equal(outs[3], model.layers[3](outs[2], outs[1], outs[0]))


@pytest.mark.parametrize("level", [0, 2])
def test_asff_gradients(level):
    block = netcfg.build(net_text(LEVELS + f"[asff]\nlayers=2,1,0\nlevel={level}\nfilters=3\n", h=32, w=24)).layers[3]
    levels = [torch.randn(2, *shape) for shape in LEVEL_SHAPES]
    assert_every_parameter_gets_gradient(block, *levels)


@pytest.mark.parametrize(
    "asff, key, words",
    [
        ("layers=0,1,2\nfilters=4\n", "layers", ["2×32×24", "4×16×12", "coarsest first"]),
        ("layers=2,0,1\nfilters=4\n", "layers", ["level 1 input 2×32×24", "level 0 input 6×8×6"]),
        ("layers=2,1,1\nfilters=4\n", "layers", ["level 2 input 4×16×12", "level 1 input 4×16×12"]),
        ("layers=2,1\nfilters=4\n", "layers", ["at least 3"]),
        ("layers=2,1,0\nfilters=4\nlevel=3\n", "level", ["less than or equal to 2"]),
        ("layers=2,1,0\n", "filters", ["missing"]),
    ],
)
def test_asff_errors_name_both_shapes(asff, key, words):
    text = net_text(LEVELS + "[asff]\n" + asff, h=32, w=24)
    item = single_error(text)
    assert (item.key, item.line) == (key, line_of(text, "[asff]", key))
    for word in words:
        assert word in item.message


def seb_reference(high, low, sd):
    up = F.conv2d(high, sd["high.weight"], sd["high.bias"], padding=1)
    up = bilinear_aligned(up, low.shape[2], low.shape[3])
    return up * F.conv2d(low, sd["low.weight"], sd["low.bias"])


def test_seb_matches_explicit_recomputation():
    model = build(LEVELS + "[seb]\nlayers=-1,-2\nfilters=5\n", c=8, h=32, w=24)
    assert model.spec.layers[-1].shape == (5, 16, 12)
    high, low = torch.randn(2, 6, 8, 6, dtype=torch.float64), torch.randn(2, 4, 16, 12, dtype=torch.float64)
    block = model.layers[3]
    with torch.no_grad():
        out = block(high, low)
    torch.testing.assert_close(out, seb_reference(high, low, block.state_dict()), rtol=1e-10, atol=1e-10)


def test_seb_gradients():
    block = netcfg.build(net_text(LEVELS + "[seb]\nlayers=2,1\nfilters=3\n", h=32, w=24)).layers[3]
    assert_every_parameter_gets_gradient(block, torch.randn(2, 6, 8, 6), torch.randn(2, 4, 16, 12))


@pytest.mark.parametrize(
    "seb, key, words",
    [
        ("layers=1,2\nfilters=4\n", "layers", ["high level 4×16×12", "low level 6×8×6"]),
        ("layers=2,0\nfilters=4\n", "layers", ["6×8×6", "2×32×24"]),
        ("layers=2,1,0\nfilters=4\n", "layers", ["at most 2"]),
        ("layers=2,1\nfilters=0\n", "filters", ["greater than 0"]),
    ],
)
def test_seb_errors(seb, key, words):
    text = net_text(LEVELS + "[seb]\n" + seb, h=32, w=24)
    item = single_error(text)
    assert (item.key, item.line) == (key, line_of(text, "[seb]", key))
    for word in words:
        assert word in item.message
