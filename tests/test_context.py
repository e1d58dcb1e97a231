"""`[rfb]`, `[rfbs]`, `[ssh]`: shapes, recomputation from the modules' own weights with the papers'
kernel sizes, strides and dilations written out, gradients, and cfg errors."""

import pytest
import torch
import torch.nn.functional as F
from blockcheck import assert_every_parameter_gets_gradient, build, conv_bn, net_text, single_error

import netcfg


def rfb_reference(x, sd, stride, scale, visual):
    """BasicRFB (RFBNet): branches of dilation visual, visual+1, 2·visual+1; inter = in/8."""
    b0 = conv_bn(x, sd, "branches.0.0", stride=stride)
    b0 = conv_bn(b0, sd, "branches.0.1", padding=visual, dilation=visual, act=None)
    b1 = conv_bn(x, sd, "branches.1.0")
    b1 = conv_bn(b1, sd, "branches.1.1", stride=stride, padding=1)
    b1 = conv_bn(b1, sd, "branches.1.2", padding=visual + 1, dilation=visual + 1, act=None)
    b2 = conv_bn(x, sd, "branches.2.0")
    b2 = conv_bn(b2, sd, "branches.2.1", padding=1)
    b2 = conv_bn(b2, sd, "branches.2.2", stride=stride, padding=1)
    b2 = conv_bn(b2, sd, "branches.2.3", padding=2 * visual + 1, dilation=2 * visual + 1, act=None)
    out = conv_bn(torch.cat([b0, b1, b2], dim=1), sd, "linear", act=None)
    return F.relu(out * scale + conv_bn(x, sd, "shortcut", stride=stride, act=None))


def rfb_small_reference(x, sd, stride, scale):
    """BasicRFB_small (RFB-s): 1×3/3×1 convs, dilations 1, 3, 3, 5; inter = in/4."""
    b0 = conv_bn(x, sd, "branches.0.0", stride=stride)
    b0 = conv_bn(b0, sd, "branches.0.1", padding=1, act=None)
    b1 = conv_bn(x, sd, "branches.1.0")
    b1 = conv_bn(b1, sd, "branches.1.1", stride=stride, padding=(1, 0))
    b1 = conv_bn(b1, sd, "branches.1.2", padding=3, dilation=3, act=None)
    b2 = conv_bn(x, sd, "branches.2.0")
    b2 = conv_bn(b2, sd, "branches.2.1", stride=stride, padding=(0, 1))
    b2 = conv_bn(b2, sd, "branches.2.2", padding=3, dilation=3, act=None)
    b3 = conv_bn(x, sd, "branches.3.0")
    b3 = conv_bn(b3, sd, "branches.3.1", padding=(0, 1))
    b3 = conv_bn(b3, sd, "branches.3.2", stride=stride, padding=(1, 0))
    b3 = conv_bn(b3, sd, "branches.3.3", padding=5, dilation=5, act=None)
    out = conv_bn(torch.cat([b0, b1, b2, b3], dim=1), sd, "linear", act=None)
    return F.relu(out * scale + conv_bn(x, sd, "shortcut", stride=stride, act=None))


def kernel_shapes(sd, prefix):
    return [tuple(t.shape) for k, t in sd.items() if k.startswith(prefix) and k.endswith("conv.weight")]


@pytest.mark.parametrize("stride, visual, scale", [(1, 1, 0.1), (2, 2, 1.0)])
def test_rfb_matches_functional_recomputation(stride, visual, scale):
    model = build(f"[rfb]\nfilters=12\nstride={stride}\nvisual={visual}\nscale={scale}\n", c=32, h=9, w=7)
    expected_hw = (9, 7) if stride == 1 else (5, 4)
    assert model.spec.layers[-1].shape == (12, *expected_hw)
    x = torch.randn(2, 32, 9, 7, dtype=torch.float64)
    with torch.no_grad():
        out = model(x)
    sd = model.layers[0].state_dict()
    torch.testing.assert_close(out, rfb_reference(x, sd, stride, scale, visual), rtol=1e-10, atol=1e-10)


def test_rfb_channel_widths_follow_the_paper():
    sd = netcfg.build(net_text("[rfb]\nfilters=20\n", c=32)).layers[0].state_dict()
    # inter = 32/8 = 4; branch 2 widens through (4//2)·3 = 6 channels
    assert kernel_shapes(sd, "branches.0") == [(8, 32, 1, 1), (8, 8, 3, 3)]
    assert kernel_shapes(sd, "branches.2") == [(4, 32, 1, 1), (6, 4, 3, 3), (8, 6, 3, 3), (8, 8, 3, 3)]
    assert kernel_shapes(sd, "linear") == [(20, 24, 1, 1)]


@pytest.mark.parametrize("stride", [1, 2])
def test_rfbs_matches_functional_recomputation(stride):
    model = build(f"[rfbs]\nfilters=10\nstride={stride}\nscale=0.5\n", c=16, h=9, w=7)
    expected_hw = (9, 7) if stride == 1 else (5, 4)
    assert model.spec.layers[-1].shape == (10, *expected_hw)
    x = torch.randn(2, 16, 9, 7, dtype=torch.float64)
    with torch.no_grad():
        out = model(x)
    sd = model.layers[0].state_dict()
    torch.testing.assert_close(out, rfb_small_reference(x, sd, stride, 0.5), rtol=1e-10, atol=1e-10)
    # inter = 16/4 = 4; branch 3 narrows to 4//2 = 2 and widens through (4//4)·3 = 3 channels
    assert kernel_shapes(sd, "branches.3") == [(2, 16, 1, 1), (3, 2, 1, 3), (4, 3, 3, 1), (4, 4, 3, 3)]


def ssh_reference(x, sd):
    stem = conv_bn(x, sd, "stem", padding=1)
    one = conv_bn(stem, sd, "branch1", padding=1)
    two = conv_bn(conv_bn(stem, sd, "branch2.0", padding=1), sd, "branch2.1", padding=1)
    return torch.cat([one, two], dim=1)


@pytest.mark.parametrize("filters, out_c", [("", 8), ("filters=6\n", 6)])
def test_ssh_matches_functional_recomputation(filters, out_c):
    model = build("[ssh]\n" + filters, c=8, h=6, w=5)
    assert model.spec.layers[-1].shape == (out_c, 6, 5)
    x = torch.randn(2, 8, 6, 5, dtype=torch.float64)
    with torch.no_grad():
        out = model(x)
    torch.testing.assert_close(out, ssh_reference(x, model.layers[0].state_dict()), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "body, c", [("[rfb]\nfilters=6\nstride=2\n", 16), ("[rfbs]\nfilters=6\nstride=2\n", 16), ("[ssh]\n", 4)]
)
def test_every_parameter_gets_a_gradient(body, c):
    block = netcfg.build(net_text(body, c=c, h=8, w=8)).layers[0]
    assert_every_parameter_gets_gradient(block, torch.randn(2, c, 8, 8))


@pytest.mark.parametrize(
    "body, c, line, key, words",
    [
        ("[rfb]\nstride=1\n", 16, 5, "filters", "missing"),
        ("[rfb]\nfilters=8\nvisual=0\n", 16, 7, "visual", "greater than 0"),
        ("[rfb]\nfilters=8\n", 8, 5, None, "at least 16 input channels"),
        ("[rfbs]\nfilters=8\nstride=0\n", 16, 7, "stride", "greater than 0"),
        ("[rfbs]\nfilters=8\n", 12, 5, None, "at least 16 input channels"),
        ("[ssh]\nfilters=7\n", 8, 6, "filters", "even"),
        ("[ssh]\n", 5, 5, "filters", "even"),
    ],
)
def test_bad_values_are_cfg_errors(body, c, line, key, words):
    item = single_error(net_text(body, c=c))
    assert (item.line, item.key) == (line, key) and words in item.message
