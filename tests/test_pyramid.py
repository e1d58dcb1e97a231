"""`[spp]`, `[aspp]`, `[ppm]`, `[strip]`: shapes, numeric checks against darknet expansions and
explicit recomputations from the modules' own weights, gradients, and cfg errors."""

import pytest
import torch
import torch.nn.functional as F
from blockcheck import (
    DARKNET_SPP,
    adaptive_avg,
    assert_every_parameter_gets_gradient,
    bilinear_aligned,
    build,
    conv_bn,
    net_text,
    single_error,
)

import netcfg

HEAD = "[convolutional]\nfilters=3\nsize=1\nactivation=linear\n"


def expansion(sizes: tuple[int, ...]) -> str:
    """Darknet sections computing SPP after layer 0: each pool reads layer 0, the final route lists
    the pools from the last (largest) back to the first, then layer 0."""
    text, pools = "", []
    for i, size in enumerate(sizes):
        if i:
            text += "[route]\nlayers=0\n"
        text += f"[maxpool]\nstride=1\nsize={size}\n"
        pools.append(2 * i + 1)
    return text + f"[route]\nlayers={','.join(map(str, reversed(pools)))},0\n"


def run_both(body_a: str, body_b: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = build(HEAD + body_a), build(HEAD + body_b)
    b.layers[0].load_state_dict(a.layers[0].state_dict())
    with torch.no_grad():
        return a(x), b(x)


def negative_input(h: int = 16, w: int = 16) -> torch.Tensor:
    """Mostly negative values, so zero padding instead of darknet's −inf would show."""
    return torch.randn(2, 8, h, w, dtype=torch.float64) - 3


def test_spp_equals_darknet_yolov3_spp_snippet():
    spp, darknet = run_both("[spp]\n", DARKNET_SPP, negative_input())
    assert spp.shape == (2, 12, 16, 16)
    assert torch.equal(spp, darknet)


@pytest.mark.parametrize("sizes", [(5, 9, 13), (3, 5, 11), (2, 4), (1, 6), (7,)])
def test_spp_equals_its_maxpool_route_expansion(sizes):
    x = negative_input(11, 14)
    spp, darknet = run_both(f"[spp]\nsizes={','.join(map(str, sizes))}\n", expansion(sizes), x)
    assert torch.equal(spp, darknet)


def test_spp_concatenates_largest_pool_first_whatever_the_written_order():
    x = negative_input()
    written, ordered = run_both("[spp]\nsizes=9,13,5\n", "[spp]\nsizes=5,9,13\n", x)
    assert torch.equal(written, ordered)


@pytest.mark.parametrize("sizes", [(5, 9, 13), (3, 7), (3, 5, 9, 17), (1, 5)])
def test_spp_fast_equals_separate_pools(sizes):
    text = ",".join(map(str, sizes))
    x = negative_input(13, 10)
    fast, slow = run_both(f"[spp]\nsizes={text}\nfast=1\n", f"[spp]\nsizes={text}\n", x)
    assert torch.equal(fast, slow)


def test_spp_shape_and_gradient_to_input():
    model = netcfg.build(net_text("[spp]\nsizes=3,5\n", c=4, h=9, w=7))
    assert model.spec.layers[-1].shape == (12, 9, 7)
    x = torch.randn(1, 4, 9, 7, requires_grad=True)
    model(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "body, line, key, words",
    [
        ("[spp]\nsizes=5,8\nfast=1\n", 7, "fast", "odd sizes"),
        ("[spp]\nsizes=5,0\n", 6, "sizes", "positive"),
        ("[spp]\nfast=2x\n", 6, "fast", "bool"),
    ],
)
def test_spp_bad_values_are_cfg_errors(body, line, key, words):
    item = single_error(net_text(body))
    assert (item.line, item.key) == (line, key) and words in item.message


def aspp_reference(x, sd, rates, image_pooling, separable):
    branches = [conv_bn(x, sd, "branches.0")]
    for i, rate in enumerate(rates, start=1):
        if separable:
            depthwise = conv_bn(x, sd, f"branches.{i}.0", padding=rate, dilation=rate, groups=x.shape[1])
            branches.append(conv_bn(depthwise, sd, f"branches.{i}.1"))
        else:
            branches.append(conv_bn(x, sd, f"branches.{i}", padding=rate, dilation=rate))
    if image_pooling:
        mean = x.mean(dim=(2, 3), keepdim=True)
        pooled = conv_bn(mean, sd, f"branches.{len(rates) + 1}.conv")
        branches.append(pooled.repeat(1, 1, x.shape[2], x.shape[3]))
    return conv_bn(torch.cat(branches, dim=1), sd, "project")


@pytest.mark.parametrize("separable", [0, 1])
@pytest.mark.parametrize("image_pooling", [0, 1])
def test_aspp_matches_functional_recomputation(separable, image_pooling):
    body = f"[aspp]\nfilters=3\nrates=2,3\nimage_pooling={image_pooling}\nseparable={separable}\n"
    model = build(body, c=4, h=9, w=7)
    assert model.spec.layers[-1].shape == (3, 9, 7)
    x = torch.randn(2, 4, 9, 7, dtype=torch.float64)
    with torch.no_grad():
        out = model(x)
    expected = aspp_reference(x, model.layers[0].state_dict(), (2, 3), image_pooling, separable)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)


def test_aspp_defaults_and_gradients():
    model = netcfg.build(net_text("[aspp]\n", c=4, h=8, w=8))
    assert model.spec.layers[-1].shape == (256, 8, 8)
    block = netcfg.build(net_text("[aspp]\nfilters=4\nrates=1,2\nseparable=1\n", c=4, h=8, w=8)).layers[0]
    assert_every_parameter_gets_gradient(block, torch.randn(2, 4, 8, 8))


@pytest.mark.parametrize(
    "body, line, key",
    [
        ("[aspp]\nfilters=0\n", 6, "filters"),
        ("[aspp]\nrates=6,-1\n", 6, "rates"),
        ("[aspp]\nseparable=maybe\n", 6, "separable"),
    ],
)
def test_aspp_bad_values_are_cfg_errors(body, line, key):
    item = single_error(net_text(body))
    assert (item.line, item.key) == (line, key)


def ppm_reference(x, sd, sizes):
    h, w = x.shape[2:]
    maps = [x]
    for i, size in enumerate(sizes):
        pooled = conv_bn(adaptive_avg(x, size, size), sd, f"stages.{i}")
        maps.append(bilinear_aligned(pooled, h, w))
    return torch.cat(maps, dim=1)


def test_ppm_matches_explicit_pooling_and_resizing():
    model = build("[ppm]\nsizes=1,2,3\n", c=6, h=7, w=5)
    assert model.spec.layers[-1].shape == (6 + 3 * 2, 7, 5)
    x = torch.randn(2, 6, 7, 5, dtype=torch.float64)
    with torch.no_grad():
        out = model(x)
    torch.testing.assert_close(out, ppm_reference(x, model.layers[0].state_dict(), (1, 2, 3)), rtol=1e-10, atol=1e-10)


def test_ppm_explicit_filters_and_gradients():
    model = netcfg.build(net_text("[ppm]\nsizes=1,3\nfilters=5\n", c=4, h=6, w=6))
    assert model.spec.layers[-1].shape == (4 + 2 * 5, 6, 6)
    assert_every_parameter_gets_gradient(model.layers[0], torch.randn(2, 4, 6, 6))


def test_ppm_errors():
    item = single_error(net_text("[ppm]\nsizes=1,2,3,6\n", c=3))
    assert item.line == 6 and item.key == "sizes" and "3/4" in item.message
    item = single_error(net_text("[ppm]\nfilters=-2\n"))
    assert (item.line, item.key) == (6, "filters")


def strip_reference(x, sd, pool_size):
    h, w = x.shape[2:]
    square, strip = conv_bn(x, sd, "reduce_square"), conv_bn(x, sd, "reduce_strip")
    total = conv_bn(square, sd, "local", padding=1, act=None)
    for i, size in enumerate(pool_size):
        pooled = conv_bn(adaptive_avg(square, size, size), sd, f"pooled.{i}", padding=1, act=None)
        total = total + bilinear_aligned(pooled, h, w)
    square = conv_bn(F.relu(total), sd, "fuse_square", padding=1)
    rows = conv_bn(adaptive_avg(strip, 1, w), sd, "row", padding=(0, 1), act=None)
    columns = conv_bn(adaptive_avg(strip, h, 1), sd, "column", padding=(1, 0), act=None)
    strip = conv_bn(F.relu(bilinear_aligned(rows, h, w) + bilinear_aligned(columns, h, w)), sd, "fuse_strip", padding=1)
    return F.relu(x + conv_bn(torch.cat([square, strip], dim=1), sd, "project", act=None))


def test_strip_matches_explicit_recomputation():
    model = build("[strip]\npool_size=3,2\n", c=8, h=7, w=5)
    assert model.spec.layers[-1].shape == (8, 7, 5)
    x = torch.randn(2, 8, 7, 5, dtype=torch.float64)
    with torch.no_grad():
        out = model(x)
    torch.testing.assert_close(out, strip_reference(x, model.layers[0].state_dict(), (3, 2)), rtol=1e-10, atol=1e-10)


def test_strip_default_pool_sizes_and_gradients():
    model = netcfg.build(net_text("[strip]\n", c=8, h=6, w=6))
    assert model.layers[0].pool_size == (20, 12)
    assert_every_parameter_gets_gradient(model.layers[0], torch.randn(2, 8, 6, 6))


@pytest.mark.parametrize(
    "body, c, line, key",
    [
        ("[strip]\npool_size=20\n", 8, 6, "pool_size"),
        ("[strip]\npool_size=4,0\n", 8, 6, "pool_size"),
        ("[strip]\n", 3, 5, None),
    ],
)
def test_strip_errors(body, c, line, key):
    item = single_error(net_text(body, c=c))
    assert (item.line, item.key) == (line, key)
