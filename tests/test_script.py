"""`torch.jit.script(model)` compiles the straight-line module `to_python` writes for the network, with
the network's tensors: it returns what `model(x)` does (heads decoded against the input given), at
another input size too, survives a save/load round trip, and fails loudly for blocks that do not script."""

import io

import pytest
import torch

import netcfg
from netcfg.section import EXAMPLE_NET

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _as_list(out):
    return out if isinstance(out, list) else [out]


@pytest.mark.parametrize(("cfg", "size"), [("yolov3-tiny", 128), ("darknet53", 64)])
def test_scripted_network_equals_eager_at_two_sizes(cfg, size):
    model = netcfg.build(cfg, width=size, height=size)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    scripted = torch.jit.script(model)
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    for shape in ((1, 3, size, size), (2, 3, size // 2, size + 32)):
        x = torch.randn(*shape)
        with torch.no_grad():
            want = _as_list(model(x))
            for got in (_as_list(scripted(x)), _as_list(loaded(x))):
                assert len(got) == len(want)
                for a, b in zip(got, want):
                    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_scripting_keeps_the_networks_dtype():
    model = netcfg.build("yolov3-tiny", width=64, height=64).double()
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        for a, b in zip(torch.jit.script(model)(x), model(x)):
            assert a.dtype == torch.float64
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_block_that_does_not_script_fails_loudly():
    """`[asff]` takes a variable number of inputs, which TorchScript cannot compile."""
    entry = netcfg.registry.lookup("asff")
    with pytest.raises((RuntimeError, ValueError, torch.jit.frontend.NotSupportedError)):
        torch.jit.script(netcfg.build(EXAMPLE_NET + entry.model.example))
