"""Inputs of another size than `[net]`'s run as darknet's resize_network would: shapes follow the input,
and a size the network cannot run at is a CfgError naming the layer and both shapes, never a bare
RuntimeError from inside the forward."""

import pytest
import torch

import netcfg
from netcfg.resize import resized

NET = "[net]\nwidth=32\nheight=32\nchannels=3\n"
CONV = "[convolutional]\nfilters=4\nsize=3\nstride=2\npad=1\n"


def test_a_network_runs_at_another_size_with_the_inferred_shapes():
    cfg = NET + CONV + CONV + "[upsample]\nstride=2\n[route]\nlayers=-1,0\n"
    model = netcfg.build(cfg)
    x = torch.randn(1, 3, 40, 24)
    outs = model(x, return_layers=[0, 1, 2, 3])
    spec = resized(model.spec, (3, 40, 24))
    assert [tuple(outs[i].shape[1:]) for i in range(4)] == [layer.shape for layer in spec.layers]
    assert spec.layers[3].shape == (8, 20, 12)


def test_a_route_whose_inputs_no_longer_agree_names_the_layer_and_shapes():
    model = netcfg.build(NET + CONV + CONV + "[upsample]\nstride=2\n[route]\nlayers=-1,0\n")
    with pytest.raises(netcfg.CfgError) as exc:
        model(torch.randn(1, 3, 30, 30))  # 30 → 15 → 8 → 16: 16×16 and 15×15 no longer agree
    (item,) = exc.value.items
    assert (item.layer, item.section, item.line) == (3, "route", 17)
    assert "at input 3×30×30 (C×H×W)" in item.message and "4×16×16 (C×H×W) and 4×15×15 (C×H×W)" in item.message


def test_a_module_built_for_other_inputs_is_named():
    model = netcfg.build(NET + CONV + "[connected]\noutput=5\n")
    with pytest.raises(netcfg.CfgError, match=r"\[connected #1\] .*built for input 4×16×16 \(C×H×W\), not 4×8×8"):
        model(torch.randn(1, 3, 16, 16))
    with pytest.raises(netcfg.CfgError, match=r"\[convolutional #0\] .*built for input 3×32×32 \(C×H×W\), not 1×32×32"):
        model(torch.randn(1, 1, 32, 32))


def test_a_batch_must_be_four_dimensional():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\) batch"):
        netcfg.build(NET + CONV)(torch.randn(3, 32, 32))
