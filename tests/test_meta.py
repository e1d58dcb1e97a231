"""Building under `torch.device("meta")`: after `to_empty` and loading a state (a state_dict or a
darknet .weights file) the network equals a normal build exactly; loading into meta tensors is refused."""

from __future__ import annotations

import pytest
import torch

import netcfg
from netcfg import WeightsError, load_darknet_weights, save_darknet_weights
from netcfg.registry import section_types
from netcfg.section import EXAMPLE_NET

#: The detection heads keep their anchors in a non-persistent buffer while they move to `modules/heads.py`.
HEADS_IN_FLUX = {"yolo", "region", "Gaussian_yolo"}

#: Anti-aliasing is not in the section examples, but its blur is exactly the kind of fixed state at stake.
ANTIALIASED = {
    "conv-antialiasing-1": "[convolutional]\nfilters=8\nsize=3\nstride=2\npad=1\nantialiasing=1\nactivation=leaky\n",
    "conv-antialiasing-2": "[convolutional]\nfilters=8\nsize=3\nstride=2\npad=1\nantialiasing=2\nactivation=leaky\n",
    "maxpool-antialiasing": "[maxpool]\nsize=2\nstride=2\nantialiasing=1\n",
}
EXAMPLES = {t.name: t.model.example for t in section_types() if t.name != "net" and t.name not in HEADS_IN_FLUX}
CFGS = {name: EXAMPLE_NET + body for name, body in {**EXAMPLES, **ANTIALIASED}.items()}

WEIGHTS_CFG = EXAMPLE_NET + (
    "[convolutional]\nfilters=8\nsize=3\nstride=2\npad=1\nbatch_normalize=1\nantialiasing=1\nactivation=leaky\n"
    "[convolutional]\nfilters=8\nsize=1\nactivation=mish\n"
    "[shortcut]\nfrom=-2\nweights_type=per_channel\n"
    "[maxpool]\nsize=2\nstride=2\nantialiasing=2\n"
)


def meta_build(cfg: str) -> netcfg.Network:
    """A network built on the meta device, then given storage holding NaN (as uninitialised memory may)."""
    with torch.device("meta"):
        model = netcfg.build(cfg)
    model.to_empty(device="cpu")
    with torch.no_grad():
        for tensor in (*model.parameters(), *model.buffers()):
            tensor.fill_(float("nan") if tensor.is_floating_point() else -1)
    return model


def run(model: netcfg.Network) -> list[torch.Tensor]:
    net = model.spec.net
    x = torch.randn(2, net.channels, net.height, net.width, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = model.eval()(x)
    return out if isinstance(out, list) else [out]


def assert_equal_outputs(expected: list[torch.Tensor], actual: list[torch.Tensor]) -> None:
    assert len(expected) == len(actual)
    for a, b in zip(expected, actual):
        torch.testing.assert_close(b, a, rtol=0, atol=0)


@pytest.mark.parametrize("cfg", CFGS.values(), ids=CFGS.keys())
def test_meta_build_loaded_with_a_state_dict_equals_a_normal_build(cfg):
    reference = netcfg.build(cfg)
    model = meta_build(cfg)
    model.load_state_dict(reference.state_dict())
    assert_equal_outputs(run(reference), run(model))


@pytest.fixture
def weights_file(tmp_path) -> str:
    """A .weights file of random values, batch-norm statistics included."""
    torch.manual_seed(4)
    source = netcfg.build(WEIGHTS_CFG)
    with torch.no_grad():
        for tensor in (*source.parameters(), *source.buffers()):
            if tensor.is_floating_point():
                tensor.uniform_(0.5, 1.5)
    path = tmp_path / "random.weights"
    save_darknet_weights(source, path)
    return str(path)


def test_meta_build_after_to_empty_loads_darknet_weights_like_a_normal_build(weights_file):
    model = meta_build(WEIGHTS_CFG)
    assert load_darknet_weights(model, weights_file) == len(model.layers)
    assert_equal_outputs(run(netcfg.build(WEIGHTS_CFG, weights=weights_file)), run(model))


def test_build_with_weights_under_the_meta_device_is_refused(weights_file):
    with torch.device("meta"), pytest.raises(WeightsError, match=r"meta device.*to_empty"):
        netcfg.build(WEIGHTS_CFG, weights=weights_file)


def test_loading_or_saving_a_meta_network_is_refused(weights_file, tmp_path):
    with torch.device("meta"):
        model = netcfg.build(WEIGHTS_CFG)
    with pytest.raises(WeightsError, match=r"cannot load .*meta device.*to_empty"):
        load_darknet_weights(model, weights_file)
    with pytest.raises(WeightsError, match=r"cannot save .*meta device"):
        save_darknet_weights(model, tmp_path / "out.weights")
    assert all(t.is_meta for t in (*model.parameters(), *model.buffers()))
    assert not hasattr(model, "darknet_header")
