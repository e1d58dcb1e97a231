"""Networks in float64 and bfloat16: `fuse()` keeps their dtype (and device) and their numbers."""

from __future__ import annotations

import pytest
import torch
from test_fuse import outputs, prepare

import netcfg
from netcfg.registry import section_types
from netcfg.section import EXAMPLE_NET

EXAMPLES = {t.name: EXAMPLE_NET + t.model.example for t in section_types() if t.name != "net"}


def tensor_dtypes(model: torch.nn.Module) -> set[torch.dtype]:
    return {t.dtype for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()}


def relative_error(expected: list[torch.Tensor], actual: list[torch.Tensor]) -> float:
    assert len(expected) == len(actual)
    errors = [(a.double() - b.double()).abs().max() / a.double().abs().max() for a, b in zip(expected, actual)]
    return max(errors).item()


def example_input(model: netcfg.Network, dtype: torch.dtype) -> torch.Tensor:
    net = model.spec.net
    return torch.randn(2, net.channels, net.height, net.width, generator=torch.Generator().manual_seed(5)).to(dtype)


@pytest.mark.parametrize("cfg", EXAMPLES.values(), ids=EXAMPLES.keys())
def test_fusing_a_float64_network_keeps_float64_and_its_outputs(cfg):
    model = prepare(netcfg.build(cfg).double())
    x = example_input(model, torch.float64)
    before = outputs(model, x)
    after = outputs(model.fuse(), x)
    assert tensor_dtypes(model) <= {torch.float64}
    assert all(out.dtype == torch.float64 for out in after)
    assert relative_error(before, after) < 1e-12


@pytest.mark.parametrize("cfg", EXAMPLES.values(), ids=EXAMPLES.keys())
def test_a_bfloat16_network_fuses_and_runs(cfg):
    model = prepare(netcfg.build(cfg).to(torch.bfloat16))
    x = example_input(model, torch.bfloat16)
    before = outputs(model, x)
    after = outputs(model.fuse(), x)
    assert tensor_dtypes(model) <= {torch.bfloat16}
    assert all(out.dtype == torch.bfloat16 and out.isfinite().all() for out in after)
    assert relative_error(before, after) < 3e-2


@pytest.mark.parametrize("cfg", EXAMPLES.values(), ids=EXAMPLES.keys())
def test_a_meta_network_fuses_on_the_meta_device(cfg):
    with torch.device("meta"):
        model = netcfg.build(cfg)
    model.fuse()
    assert all(t.is_meta for t in (*model.parameters(), *model.buffers()))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_lrn_runs_in_half_precision_with_float32s_numbers(dtype):
    model = netcfg.build(EXAMPLE_NET + "[lrn]\nsize=5\nalpha=0.1\nbeta=0.75\nkappa=2\n")
    x = example_input(model, torch.float32)
    expected = outputs(model, x)
    actual = outputs(model.to(dtype), x.to(dtype))
    assert actual[0].dtype == dtype
    torch.testing.assert_close(actual[0].float(), expected[0], rtol=2e-2, atol=2e-2)
