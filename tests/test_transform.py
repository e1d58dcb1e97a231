"""`[stn]`: a fresh block is the identity; known affine maps (flip, one-pixel shift) give their exact
results; θ is the localisation net's output; gradients; cfg errors."""

import pytest
import torch
import torch.nn.functional as F
from blockcheck import assert_every_parameter_gets_gradient, net_text, single_error

import netcfg


def stn(body: str = "[stn]\nfilters=6\npool=2\n", c: int = 3, h: int = 8, w: int = 6):
    return netcfg.build(net_text(body, c=c, h=h, w=w)).layers[0]


def set_theta(block, theta: tuple[float, ...]) -> None:
    """Make the block predict a fixed θ whatever its input."""
    with torch.no_grad():
        block.fc.weight.zero_()
        block.fc.bias.copy_(torch.tensor(theta))


@pytest.mark.parametrize("h, w", [(8, 6), (5, 9)])
def test_fresh_stn_returns_its_input(h, w):
    model = netcfg.build(net_text("[stn]\n", c=3, h=h, w=w))
    assert model.spec.layers[-1].shape == (3, h, w)
    image = torch.rand(2, 3, h, w)
    with torch.no_grad():
        assert (model(image) - image).abs().max() <= 1e-6
        x = torch.randn(2, 3, h, w, dtype=torch.float64) * 10
        assert (model.double()(x) - x).abs().max() <= 1e-12


def test_mirror_theta_flips_the_image():
    block = stn()
    set_theta(block, (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0))
    x = torch.rand(2, 3, 8, 6)
    with torch.no_grad():
        assert (block(x) - x.flip(-1)).abs().max() <= 1e-6


def test_translation_by_one_pixel_shifts_and_zero_fills():
    block = stn(w=6)
    set_theta(block, (1.0, 0.0, 2 / 6, 0.0, 1.0, 0.0))
    x = torch.rand(2, 3, 8, 6)
    with torch.no_grad():
        out = block(x)
    assert (out[..., :-1] - x[..., 1:]).abs().max() <= 1e-6
    assert out[..., -1].abs().max() <= 1e-6


def test_theta_is_the_localisation_net_output():
    block = stn("[stn]\nfilters=4\npool=2\n", h=8, w=6)
    torch.nn.init.normal_(block.fc.weight)
    x = torch.randn(2, 3, 8, 6)
    sd = block.state_dict()
    features = F.relu(F.conv2d(x, sd["conv.weight"], sd["conv.bias"], padding=1))
    pooled = features.reshape(2, 4, 2, 4, 2, 3).mean(dim=(3, 5))  # 8×6 → 2×2 bins of 4×3
    theta = pooled.flatten(1) @ sd["fc.weight"].T + sd["fc.bias"]
    with torch.no_grad():
        torch.testing.assert_close(block.theta(x), theta.view(2, 2, 3))


def test_defaults_and_gradients():
    block = stn("[stn]\n")
    assert block.conv.out_channels == 32 and block.fc.in_features == 32 * 4 * 4
    torch.nn.init.normal_(block.fc.weight, std=0.01)
    assert_every_parameter_gets_gradient(block, torch.randn(2, 3, 8, 6))


@pytest.mark.parametrize("body, line, key", [("[stn]\npool=0\n", 6, "pool"), ("[stn]\nfilters=-1\n", 6, "filters")])
def test_bad_values_are_cfg_errors(body, line, key):
    item = single_error(net_text(body))
    assert (item.line, item.key) == (line, key) and "greater than 0" in item.message
