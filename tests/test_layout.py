"""Kernels are channels_last from `build` (oneDNN's fastest CPU layout) unless asked otherwise, the
layout passes between layers, and what the network returns is contiguous all the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_build_weights import randomised_file

import netcfg
from netcfg import loading, memory_format
from netcfg.codegen.load import generated_class
from netcfg.registry import section_types
from netcfg.section import EXAMPLE_NET

CFG = """[net]
width=24
height=24
channels=3
[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky
[convolutional]
filters=24
size=3
stride=2
pad=1
activation=leaky
[convolutional]
batch_normalize=1
filters=8
size=1
stride=1
activation=linear
[route]
layers=-1,-2
"""

CHANNELS_LAST = torch.channels_last


def kernels(model: torch.nn.Module) -> list[torch.Tensor]:
    """The 3×3 kernels (a 1×1 kernel is contiguous in both layouts)."""
    return [t for t in model.state_dict().values() if t.dim() == 4 and t.shape[-1] > 1]


def test_kernels_are_channels_last_unless_asked_otherwise():
    made = kernels(netcfg.build(CFG))
    assert len(made) == 2 and all(k.is_contiguous(memory_format=CHANNELS_LAST) and not k.is_contiguous() for k in made)
    plain = netcfg.build(CFG, memory_format=torch.contiguous_format)
    assert all(k.is_contiguous() for k in kernels(plain)) and len(kernels(plain)) == 2
    with pytest.raises(ValueError, match="memory_format is torch.channels_last or torch.contiguous_format"):
        netcfg.build(CFG, memory_format=torch.preserve_format)


def test_layers_pass_channels_last_and_the_network_returns_contiguous():
    model = netcfg.build(CFG)
    x = torch.randn(2, 3, 24, 24)
    with torch.no_grad():
        assert model.layers[0](x).is_contiguous(memory_format=CHANNELS_LAST)  # the fast layout passes on
        out = model(x)
        layers = model(x, return_layers=[0, 3, -1])
    assert out.is_contiguous() and all(t.is_contiguous() for t in layers.values())
    assert out.view(2, -1).shape == (2, 32 * 12 * 12)


def _file(tmp_path) -> str:
    return randomised_file(CFG, tmp_path / "w.weights")


@pytest.mark.parametrize("scratch", [64, 1000, 2**20])
def test_kernels_read_in_pieces_equal_the_files_order(tmp_path, monkeypatch, scratch):
    """Through a scratch buffer smaller than a kernel, than one output channel's row, or larger."""
    path = _file(tmp_path)
    monkeypatch.setattr(loading, "SCRATCH_BYTES", scratch)
    model = netcfg.build(CFG, weights=path)
    floats = np.fromfile(path, dtype=np.float32, offset=20)
    first = model.layers[0]
    start = 4 * 16  # bn bias, scale, mean, variance
    want = floats[start : start + first.conv.weight.numel()].reshape(16, 3, 3, 3)
    assert first.conv.weight.is_contiguous(memory_format=CHANNELS_LAST)
    np.testing.assert_array_equal(first.conv.weight.detach().numpy(), want)
    plain = netcfg.build(CFG, weights=path, memory_format=torch.contiguous_format)
    state = plain.state_dict()
    assert all(torch.equal(t, state[name]) for name, t in model.state_dict().items())


def test_a_float64_build_reads_kernels_cast_and_channels_last(tmp_path):
    path = _file(tmp_path)
    torch.set_default_dtype(torch.float64)
    try:
        model = netcfg.build(CFG, weights=path)
    finally:
        torch.set_default_dtype(torch.float32)
    weight = model.layers[1].conv.weight
    assert weight.dtype == torch.float64 and weight.is_contiguous(memory_format=CHANNELS_LAST)
    plain = netcfg.build(CFG, weights=path)
    assert torch.equal(weight, plain.layers[1].conv.weight.double())


def test_save_of_a_channels_last_build_writes_the_files_bytes(tmp_path):
    path = _file(tmp_path)
    netcfg.save_darknet_weights(netcfg.build(CFG, weights=path), tmp_path / "again.weights")
    assert (tmp_path / "again.weights").read_bytes() == Path(path).read_bytes()


def test_the_generated_module_lays_its_kernels_out_alike():
    model = netcfg.build(CFG)
    generated = generated_class(model.spec)().eval()
    generated.load_state_dict(model.state_dict())
    assert [k.stride() for k in kernels(generated)] == [k.stride() for k in kernels(model)]
    x = torch.randn(1, 3, 24, 24)
    with torch.no_grad():
        out = generated(x)
        assert out.is_contiguous() and torch.equal(out, model(x))


@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_fusing_keeps_the_kernels_layout(layout):
    model = netcfg.build(CFG, memory_format=layout)
    x = torch.randn(1, 3, 24, 24)
    with torch.no_grad():
        want = model(x)
        fused = model.fuse()
        got = fused(x)
    assert all(k.is_contiguous(memory_format=layout) for k in kernels(fused))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_fresh_kernels_are_relaid_within_their_own_storage(monkeypatch):
    """Through a scratch smaller than a kernel (in pieces) and smaller than one output channel."""
    for floats in (100, 10):
        monkeypatch.setattr(memory_format, "RELAY_FLOATS", floats)
        torch.manual_seed(0)
        model = netcfg.build(CFG, memory_format=torch.contiguous_format)
        want = {name: t.clone() for name, t in model.state_dict().items()}
        weight = model.layers[0].conv.weight
        where = weight.data_ptr()
        memory_format.kernels_channels_last(model, fresh=True)
        assert weight.data_ptr() == where and weight.is_contiguous(memory_format=CHANNELS_LAST)
        assert all(torch.equal(t, want[name]) for name, t in model.state_dict().items())


def test_a_kernel_sharing_its_storage_is_copied_not_relaid_in_place():
    model = netcfg.build(CFG, memory_format=torch.contiguous_format)
    conv = model.layers[0].conv
    whole = torch.randn(2 * conv.weight.numel())
    conv.weight.data = whole[conv.weight.numel() :].view(conv.weight.shape)
    before = whole.clone()
    memory_format.kernels_channels_last(model, fresh=True)
    assert torch.equal(whole, before) and conv.weight.is_contiguous(memory_format=CHANNELS_LAST)
    assert torch.equal(conv.weight, before[conv.weight.numel() :].view(conv.weight.shape))


EXAMPLES = {t.name: EXAMPLE_NET + t.model.example for t in section_types() if t.name != "net"}


@pytest.mark.parametrize("cfg", EXAMPLES.values(), ids=EXAMPLES.keys())
def test_every_section_takes_channels_last_input_alike(cfg):
    """What a layer after a convolution receives: every section's example gives the same output on
    a channels_last input as on a contiguous one."""
    torch.manual_seed(0)
    model = netcfg.build(cfg)
    x = torch.randn(2, *model.spec.input_shape)
    with torch.no_grad():
        want = model.reset_state()(x)
        got = model.reset_state()(x.contiguous(memory_format=CHANNELS_LAST))
    for a, b in zip(want if isinstance(want, list) else [want], got if isinstance(got, list) else [got], strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
