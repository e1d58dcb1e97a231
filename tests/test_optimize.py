"""`netcfg.optimize`: the fused channels_last network gives the eval-mode network's outputs, whatever
the input's layout, decoded heads included, and optimising twice changes nothing."""

from __future__ import annotations

import torch

import netcfg

CFG = (
    "[net]\nwidth=32\nheight=32\nchannels=3\n"
    "[convolutional]\nfilters=8\nsize=3\nstride=2\npad=1\nbatch_normalize=1\nactivation=leaky\n"
    "[maxpool]\nsize=2\nstride=1\n"
    "[convolutional]\nfilters=8\nsize=3\npad=1\nbatch_normalize=1\nactivation=mish\n"
    "[shortcut]\nfrom=-3\n"
    "[convolutional]\nfilters=21\nsize=1\nactivation=linear\n"
    "[yolo]\nmask=0,1,2\nanchors=4,5, 8,9, 12,14\nclasses=2\nnum=3\n"
)


def test_optimized_network_equals_the_eval_network():
    torch.manual_seed(0)
    model = netcfg.build(CFG)
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
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
