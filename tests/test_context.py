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


def ssh_context(x: torch.Tensor, weights: dict[str, torch.Tensor]) -> torch.Tensor:
    """SSH's context module (Najibi et al. 2017, Fig. 4): a shared 3×3 conv to X/2 channels, then a
    3×3 conv (5×5 receptive field) and two chained 3×3 convs (7×7), concatenated and ReLU'd as the
    detection module does after its concat. netcfg adds batch norm (eval) after every conv."""

    def conv3x3(t: torch.Tensor, name: str, relu: bool) -> torch.Tensor:
        t = F.conv2d(t, weights[f"{name}.conv.weight"], padding=1)
        mean, var = weights[f"{name}.bn.running_mean"], weights[f"{name}.bn.running_var"]
        scale = weights[f"{name}.bn.weight"] / torch.sqrt(var + 1e-5)
        t = t * scale[:, None, None] + (weights[f"{name}.bn.bias"] - mean * scale)[:, None, None]
        return t.clamp_min(0) if relu else t

    shared = conv3x3(x, SSH_NAMES["shared"], relu=True)
    five = conv3x3(shared, SSH_NAMES["5x5"], relu=False)
    seven = conv3x3(conv3x3(shared, SSH_NAMES["7x7 first"], relu=True), SSH_NAMES["7x7 second"], relu=False)
    return torch.cat([five, seven], dim=1).clamp_min(0)


#: The paper's convolutions → the module's parameter prefixes.
SSH_NAMES = {"shared": "stem", "5x5": "branch1", "7x7 first": "branch2.0", "7x7 second": "branch2.1"}


@pytest.mark.parametrize("filters, out_c", [("", 8), ("filters=6\n", 6)])
def test_ssh_matches_the_paper_context_module(filters, out_c):
    model = build("[ssh]\n" + filters, c=8, h=6, w=5)
    assert model.spec.layers[-1].shape == (out_c, 6, 5)
    weights = model.layers[0].state_dict()
    assert {k.rsplit(".", 2)[0] for k in weights} == set(SSH_NAMES.values())
    x = torch.randn(2, 8, 6, 5, dtype=torch.float64)
    with torch.no_grad():
        out = model(x)
    torch.testing.assert_close(out, ssh_context(x, weights), rtol=1e-10, atol=1e-10)


def test_ssh_branches_see_5x5_and_7x7_windows():
    """The first filters/2 channels depend on a 5×5 window of the input, the rest on a 7×7 one
    (positive weights and inputs, so no ReLU hides a dependence)."""
    model = build("[ssh]\nfilters=4\n", c=2, h=11, w=11)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            t.copy_(t.abs() if "running_mean" not in name else torch.zeros_like(t))
    x = torch.rand(1, 2, 11, 11, dtype=torch.float64, requires_grad=True)
    windows = []
    for half in (slice(0, 2), slice(2, 4)):
        (grad,) = torch.autograd.grad(model(x)[0, half, 5, 5].sum(), x)
        rows, cols = (grad[0].abs().sum(0) > 0).nonzero().T
        windows.append((int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)))
    assert windows == [(5, 5), (7, 7)]


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
