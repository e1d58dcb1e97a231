"""`Network.fuse()`: batch norms folded, ACB and RefConv collapsed, the eval-mode outputs unchanged."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import netcfg
from netcfg.registry import section_types
from netcfg.section import EXAMPLE_NET

torch.manual_seed(0)

TINY_YOLO = """
[net]
width=32
height=32
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=32
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=1

[convolutional]
batch_normalize=1
filters=16
size=1
stride=1
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=32
size=3
stride=1
pad=1
groups=2
dilation=2
activation=leaky

[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear

[yolo]
mask=3,4,5
anchors=3,4, 5,7, 8,6, 10,12, 14,16, 20,24
classes=2
num=6

[route]
layers=-4

[convolutional]
batch_normalize=1
filters=8
size=1
stride=1
pad=1
activation=leaky

[upsample]
stride=2

[route]
layers=-1,2

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear

[yolo]
mask=0,1,2
anchors=3,4, 5,7, 8,6, 10,12, 14,16, 20,24
classes=2
num=6
"""

MIXED = (
    "[net]\nwidth=16\nheight=16\nchannels=4\n"
    "[convolutional]\nfilters=8\nsize=3\npad=1\nbatch_normalize=1\nactivation=leaky\n"
    "[dcn]\nfilters=8\nsize=3\npad=1\ngroups=2\nbatch_normalize=1\nactivation=mish\n"
    "[acb]\nfilters=8\nsize=5\npadding=1\nstride=2\nbatch_normalize=1\nactivation=leaky\n"
    "[refconv]\nfilters=8\nsize=3\npad=1\ngroups=8\ndilation=2\nbatch_normalize=1\nactivation=swish\n"
    "[shortcut]\nfrom=-2\n"
    "[ghost]\nfilters=10\nsize=3\n"
    "[blaze]\nfilters=12\nfilters2=14\nsize=3\n"
    "[dwconv]\nfilters=12\nstride=2\n"
    "[odconv]\nfilters=12\nsize=3\npad=1\nbatch_normalize=1\nactivation=leaky\n"
    "[coordconv]\nfilters=8\nsize=1\nbatch_normalize=1\nactivation=leaky\n"
    "[mixconv]\nfilters=8\nsizes=3,5\n"
    "[blurpool]\nfilt_size=3\nstride=1\n"
    "[route]\nlayers=-1,-4\n"
    "[acb]\nfilters=6\nsize=3\npad=1\nactivation=linear\n"
)


def prepare(model: netcfg.Network) -> netcfg.Network:
    """Random batch-norm statistics, offsets and refocusing, so nothing fuses trivially."""
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.5)
                module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                module.weight.copy_(torch.randn(n, generator=gen))
                module.bias.copy_(torch.randn(n, generator=gen))
        for name, p in model.named_parameters():
            if "offset" in name or "refocus" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return model.eval()


def outputs(model: netcfg.Network, x: torch.Tensor) -> list[torch.Tensor]:
    """The model's outputs for `x`, from a fresh recurrent state (so calls compare alike)."""
    with torch.no_grad():
        out = model.reset_state()(x)
    return out if isinstance(out, list) else [out]


def assert_same_outputs(before: list[torch.Tensor], after: list[torch.Tensor]) -> None:
    assert len(before) == len(after)
    for a, b in zip(before, after):
        relative = (a - b).abs().max() / a.abs().max()
        assert relative < 1e-5, f"fused differs from unfused by {relative:.2e} (relative)"


def assert_no_batch_norm(model: nn.Module) -> None:
    assert not [name for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]


def test_fusing_a_tiny_yolo_folds_every_batch_norm_keeping_groups_and_dilation():
    model = prepare(netcfg.build(TINY_YOLO))
    x = torch.rand(2, 3, 32, 32)
    before = outputs(model, x)
    assert model.fused is False
    assert model.fuse() is model and model.fused is True
    assert_no_batch_norm(model)
    assert_same_outputs(before, outputs(model, x))
    grouped = model.layers[7].conv
    assert grouped.groups == 2 and grouped.dilation == (2, 2) and grouped.padding == (2, 2)
    assert grouped.bias is not None


CONV_FAMILY = [t for t in section_types() if t.model.family == "conv"]


@pytest.mark.parametrize("section_type", CONV_FAMILY, ids=lambda t: t.name)
def test_every_conv_section_fuses_to_an_equal_network(section_type):
    model = prepare(netcfg.build(EXAMPLE_NET + section_type.model.example))
    x = torch.randn(2, 8, 32, 32)
    before = outputs(model, x)
    model.fuse()
    assert_no_batch_norm(model)
    assert_same_outputs(before, outputs(model, x))


@pytest.mark.parametrize("name", ["acb", "refconv"])
def test_acb_and_refconv_collapse_into_one_convolution(name):
    (section_type,) = [t for t in CONV_FAMILY if t.name == name]
    model = prepare(netcfg.build(EXAMPLE_NET + section_type.model.example)).fuse()
    convs = [m for m in model.layers[-1].modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 and convs[0].kernel_size == (3, 3)
    assert not list(model.layers[-1].buffers())


def test_a_cfg_mixing_the_conv_family_fuses_to_an_equal_network():
    model = prepare(netcfg.build(MIXED))
    x = torch.randn(2, 4, 16, 16)
    before = outputs(model, x)
    model.fuse()
    assert_no_batch_norm(model)
    assert_same_outputs(before, outputs(model, x))


@pytest.mark.parametrize("cfg", [TINY_YOLO, MIXED], ids=["tiny-yolo", "mixed"])
def test_fusing_twice_equals_fusing_once(cfg):
    model = prepare(netcfg.build(cfg))
    x = torch.rand(1, model.spec.net.channels, model.spec.net.height, model.spec.net.width)
    once = outputs(model.fuse(), x)
    structure = str(model)
    twice = outputs(model.fuse(), x)
    assert str(model) == structure
    for a, b in zip(once, twice):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_fusing_darknet_yolov3_tiny(shared_cfgs):
    model = prepare(netcfg.build(shared_cfgs / "yolov3-tiny.cfg", width=64, height=64))
    x = torch.rand(1, 3, 64, 64)
    before = outputs(model, x)
    assert_same_outputs(before, outputs(model.fuse(), x))
    assert_no_batch_norm(model)
