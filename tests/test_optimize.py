"""`netcfg.optimize`: the fused channels_last network gives the eval-mode network's outputs, whatever
the input's layout, decoded heads included, and optimising twice changes nothing."""

from __future__ import annotations

import copy
import importlib
import io
import platform
import subprocess
import sys

import pytest
import torch
from exportcheck import seeded

import netcfg
from netcfg.optimize import PackedConv
from netcfg.registry import section_types
from netcfg.section import EXAMPLE_NET

CFG = (
    "[net]\nwidth=32\nheight=32\nchannels=3\n"
    "[convolutional]\nfilters=8\nsize=3\nstride=2\npad=1\nbatch_normalize=1\nactivation=leaky\n"
    "[maxpool]\nsize=2\nstride=1\n"
    "[convolutional]\nfilters=8\nsize=3\npad=1\nbatch_normalize=1\nactivation=mish\n"
    "[shortcut]\nfrom=-3\n"
    "[convolutional]\nfilters=21\nsize=1\nactivation=linear\n"
    "[yolo]\nmask=0,1,2\nanchors=4,5, 8,9, 12,14\nclasses=2\nnum=3\n"
)


def _seeded(cfg: str) -> netcfg.Network:
    """The network of `cfg` with seeded weights and batch-norm statistics that fusing has to carry."""
    torch.manual_seed(0)
    model = netcfg.build(cfg)
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.uniform_(0.5, 1.5)
    return model


def test_optimized_network_equals_the_eval_network():
    model = _seeded(CFG)
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        want = model(x)
        fast = netcfg.optimize(model)
        assert fast is model and model.fused and not model.training
        assert netcfg.optimize(model) is model
        assert model.layers[0].conv.weight.is_contiguous(memory_format=torch.channels_last)
        for got in (fast(x), fast(x.contiguous(memory_format=torch.channels_last))):
            for a, b in zip(got, want, strict=True):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_autocast_bfloat16_runs_the_forward():
    model = netcfg.optimize(netcfg.build(CFG))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(1, 3, 32, 32))
    assert out[0].dtype == torch.bfloat16 and bool(torch.isfinite(out[0].float()).all())


def _conv_cfg(activation: str) -> str:
    """Convolutions of every shape oneDNN packs: strided, grouped, dilated, 1×1, biased and normed."""
    return (
        "[net]\nwidth=24\nheight=20\nchannels=4\n"
        f"[convolutional]\nfilters=8\nsize=3\nstride=2\npad=1\nbatch_normalize=1\nactivation={activation}\n"
        f"[convolutional]\nfilters=8\nsize=3\npad=1\ngroups=2\nactivation={activation}\n"
        f"[convolutional]\nfilters=6\nsize=3\npad=1\ndilation=2\nbatch_normalize=1\nactivation={activation}\n"
        f"[convolutional]\nfilters=5\nsize=1\nactivation={activation}\n"
    )


ACTIVATIONS = ["linear", "leaky", "relu", "logistic", "swish", "tanh", "hardtan", "mish", "elu"]  # fused, then not


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_packed_convolutions_equal_the_eval_network(activation):
    model = _seeded(_conv_cfg(activation))
    x = torch.randn(2, 4, 20, 24)
    with torch.no_grad():
        want = model(x)
        fast = netcfg.optimize(model)
        assert all(isinstance(layer, PackedConv) for layer in fast.layers)
        for size in ((20, 24), (36, 28)):
            y = torch.randn(2, 4, *size)
            torch.testing.assert_close(fast(y), model(y), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(fast(x), want, rtol=1e-4, atol=1e-4)


def test_packed_kernel_follows_the_weights():
    model, other = netcfg.optimize(_seeded(_conv_cfg("leaky"))), _seeded(_conv_cfg("leaky"))
    with torch.no_grad():
        for t in other.parameters():
            t.mul_(-1.5)
    x = torch.randn(1, 4, 20, 24)
    with torch.no_grad():
        model(x)
        model.load_state_dict(netcfg.optimize(other).state_dict())
        torch.testing.assert_close(model(x), other(x), rtol=1e-4, atol=1e-4)
        last = model.layers[3].conv
        last.weight.zero_()  # in place: the kernel is packed again, so only the bias is left
        out = model(x)
        torch.testing.assert_close(out, torch.nn.functional.leaky_relu(last.bias, 0.1).view(1, -1, 1, 1).expand_as(out))


def test_packed_kernel_follows_the_input_size(monkeypatch):
    """oneDNN picks a packed kernel's layout by input size and reorders one packed for another size on
    every call, so a convolution packs again when the size changes, and only then."""
    optimize_module = importlib.import_module("netcfg.optimize")
    pack, packed_for = optimize_module._pack, []
    monkeypatch.setattr(optimize_module, "_pack", lambda conv, size: packed_for.append(size) or pack(conv, size))
    model = netcfg.optimize(_seeded(_conv_cfg("leaky")))
    sizes = [(1, 20, 24), (1, 20, 24), (2, 36, 28), (2, 36, 28), (1, 20, 24)]
    with torch.no_grad():
        for n, h, w in sizes:
            model(torch.randn(n, 4, h, w))
    first = [size for size in packed_for if size[1] == 4]  # the first layer's packs (4 input channels)
    assert first == [[1, 4, 20, 24], [2, 4, 36, 28], [1, 4, 20, 24]]
    assert len(packed_for) == 3 * len(model.layers)


def test_packed_network_trains_copies_and_pickles_as_the_plain_one():
    model = netcfg.optimize(_seeded(_conv_cfg("swish")))
    x = torch.randn(1, 4, 20, 24)
    model(x).sum().backward()  # autograd runs the plain path, so gradients reach the weights
    assert all(layer.conv.weight.grad is not None for layer in model.layers)
    with torch.no_grad():
        want = model(x)
        buffer = io.BytesIO()
        torch.save(model, buffer)
        buffer.seek(0)
        for twin in (copy.deepcopy(model), torch.load(buffer, weights_only=False)):
            torch.testing.assert_close(twin(x), want)


def test_a_meta_network_is_optimised_without_packing():
    with torch.device("meta"):
        model = netcfg.optimize(netcfg.build(_conv_cfg("leaky")))
        assert not any(isinstance(layer, PackedConv) for layer in model.layers)
        assert model(torch.empty(1, 4, 20, 24)).shape == (1, 5, 10, 12)


def _flat(out: object) -> list[torch.Tensor]:
    """Every tensor of a network's output (a tensor or a list of them), in order."""
    return [out] if isinstance(out, torch.Tensor) else [t for item in out for t in _flat(item)]


def test_every_section_example_optimises_to_the_same_outputs():
    """optimize() on each registered section's example: same outputs as the eval-mode network, at
    batch 1 and 2, whatever the section does with channels_last tensors."""
    off = {}
    for section in (t for t in section_types() if t.name != "net"):
        model = seeded(netcfg.build(EXAMPLE_NET + section.model.example))
        gen = torch.Generator().manual_seed(1)
        inputs = [torch.rand(1, 8, 32, 32, generator=gen), torch.rand(2, 8, 32, 32, generator=gen)]
        with torch.no_grad():
            want = [_flat(model.reset_state()(x)) for x in inputs]
            fast = netcfg.optimize(copy.deepcopy(model))
            got = [_flat(fast.reset_state()(x)) for x in inputs]
        for w, g in zip(want, got, strict=True):
            scale = 1 + max((float(t.detach().abs().max()) for t in w if t.numel()), default=0.0)
            if len(w) != len(g) or any(not torch.allclose(a, b, rtol=1e-3, atol=1e-4 * scale) for a, b in zip(w, g)):
                off[section.name] = [float((a - b).abs().max()) for a, b in zip(w, g)]
    assert not off, off


FAULTS_PER_FORWARD = """
import resource, sys, torch, netcfg
conv = "[convolutional]\\nfilters={}\\nsize=1\\nactivation=leaky\\n"
cfg = "[net]\\nwidth=512\\nheight=512\\nchannels=3\\n" + conv * 2
model = netcfg.optimize(netcfg.build(cfg.format(64, 4)), keep_memory=sys.argv[1] == "keep")
x = torch.randn(1, 3, 512, 512)
with torch.inference_mode():
    model(x), model(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        model(x)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 3)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="keep_memory tunes glibc's malloc")
def test_optimize_keeps_freed_activations_for_the_next_forward():
    """A 64 MiB activation is above glibc's largest dynamic mmap threshold (32 MiB): by default each
    forward maps it afresh and faults its 16,384 pages in; kept, it is reused. Fresh processes, since
    the setting is process-wide. The kept run may still fault pages in with no mmap or munmap between
    calls (a third of them at times on the VM of 2026-12-02: the kernel reclaiming, presumably)."""

    def faults(mode: str) -> int:
        run = subprocess.run([sys.executable, "-c", FAULTS_PER_FORWARD, mode], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        return int(run.stdout)

    kept, default = faults("keep"), faults("default")
    assert default > 16000 and kept < default / 2
