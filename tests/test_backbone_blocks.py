"""[bottleneck], [basicblock], [inception], [resize], [adaptive_avgpool] against reference modules
(torchvision's layout from torchvision_refs.py, or written here from the paper) with copied weights."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision_refs import BasicBlock as RefBasicBlock
from torchvision_refs import Bottleneck as RefBottleneck
from torchvision_refs import randomize_batchnorm

import netcfg


def _net(width: int, height: int, channels: int, body: str) -> str:
    return f"[net]\nwidth={width}\nheight={height}\nchannels={channels}\n{body}"


def _copy_resnet_block(ours: nn.Module, ref: nn.Module) -> None:
    """conv_k/bn_k → ours.conv_k.conv/.bn; downsample.0/1 → ours.downsample.conv/.bn."""
    for k in (1, 2, 3):
        if hasattr(ref, f"conv{k}"):
            getattr(ours, f"conv{k}").conv.load_state_dict(getattr(ref, f"conv{k}").state_dict())
            getattr(ours, f"conv{k}").bn.load_state_dict(getattr(ref, f"bn{k}").state_dict())
    assert (ours.downsample is None) == (ref.downsample is None)
    if ref.downsample is not None:
        ours.downsample.conv.load_state_dict(ref.downsample[0].state_dict())
        ours.downsample.bn.load_state_dict(ref.downsample[1].state_dict())


@pytest.mark.parametrize(
    "keys, ref_args, in_channels",
    [
        ("filters=32\nstride=2", (8, 8, 2), 8),  # projection: stride and channels change
        ("filters=32", (32, 8, 1), 32),  # identity shortcut
        ("filters=32\nstride=2\ngroups=4\nwidth_per_group=8", (16, 8, 2, 4, 8), 16),  # ResNeXt, same channels
    ],
)
def test_bottleneck_equals_torchvision_bottleneck(keys, ref_args, in_channels):
    model = netcfg.build(_net(9, 7, in_channels, f"[bottleneck]\n{keys}\n"))
    ref = RefBottleneck(*ref_args)
    randomize_batchnorm(ref)
    _copy_resnet_block(model.layers[0], ref)
    ref.eval()
    x = torch.randn(2, in_channels, 7, 9)
    out = model(x)
    assert out.shape[1:] == model.spec.layers[0].shape
    torch.testing.assert_close(out, ref(x))


def test_bottleneck_width_follows_torchvision():
    # resnext50_32x4d layer1: planes 64, groups 32, width_per_group 4 → width 128; wide_resnet50_2: 128.
    spec = netcfg.parse(_net(8, 8, 64, "[bottleneck]\nfilters=256\ngroups=32\nwidth_per_group=4\n"))
    assert spec.layers[0].section.width == 128
    spec = netcfg.parse(_net(8, 8, 64, "[bottleneck]\nfilters=256\nwidth_per_group=128\n"))
    assert spec.layers[0].section.width == 128


def test_bottleneck_equals_its_darknet_expansion():
    """The same block spelled with darknet sections (the form to use when inserting, e.g., [se])."""
    expanded = (
        "[convolutional]\nfilters=4\nsize=1\nbatch_normalize=1\nactivation=relu\n"
        "[convolutional]\nfilters=4\nsize=3\nstride=2\npad=1\nbatch_normalize=1\nactivation=relu\n"
        "[convolutional]\nfilters=16\nsize=1\nbatch_normalize=1\nactivation=linear\n"
        "[route]\nlayers=-4\n"
        "[convolutional]\nfilters=16\nsize=1\nstride=2\nbatch_normalize=1\nactivation=linear\n"
        "[shortcut]\nfrom=-3\nactivation=relu\n"
    )
    stem = "[route]\nlayers=-1\n"  # gives the block's input a layer for the shortcut's [route] to return to
    darknet = netcfg.build(_net(9, 9, 8, stem + expanded))
    block = netcfg.build(_net(9, 9, 8, "[bottleneck]\nfilters=16\nstride=2\n"))
    randomize_batchnorm(darknet)
    ours = block.layers[0]
    for conv, dk in zip([ours.conv1, ours.conv2, ours.conv3, ours.downsample], [1, 2, 3, 5]):
        conv.load_state_dict(darknet.layers[dk].state_dict())
    x = torch.randn(1, 8, 9, 9)
    torch.testing.assert_close(block(x), darknet(x))


@pytest.mark.parametrize("stride, in_channels", [(2, 4), (1, 8)])
def test_basicblock_equals_torchvision_basicblock(stride, in_channels):
    model = netcfg.build(_net(7, 7, in_channels, f"[basicblock]\nfilters=8\nstride={stride}\n"))
    ref = RefBasicBlock(in_channels, 8, stride)
    randomize_batchnorm(ref)
    _copy_resnet_block(model.layers[0], ref)
    ref.eval()
    x = torch.randn(2, in_channels, 7, 7)
    out = model(x)
    assert tuple(out.shape[1:]) == model.spec.layers[0].shape == (8, 4 if stride == 2 else 7, 4 if stride == 2 else 7)
    torch.testing.assert_close(out, ref(x))


class RefInception(nn.Module):
    """Inception v1 as in the paper (Szegedy et al. 2014, Fig. 2b), written out with explicit convolutions."""

    def __init__(self, cin, n1, r3, n3, r5, n5, pp):
        super().__init__()
        self.b1 = nn.Conv2d(cin, n1, 1)
        self.b2r, self.b2 = nn.Conv2d(cin, r3, 1), nn.Conv2d(r3, n3, 3, padding=1)
        self.b3r, self.b3 = nn.Conv2d(cin, r5, 1), nn.Conv2d(r5, n5, 5, padding=2)
        self.b4 = nn.Conv2d(cin, pp, 1)

    def forward(self, x):
        pooled = F.max_pool2d(x, 3, stride=1, padding=1)
        return torch.cat(
            [
                F.relu(self.b1(x)),
                F.relu(self.b2(F.relu(self.b2r(x)))),
                F.relu(self.b3(F.relu(self.b3r(x)))),
                F.relu(self.b4(pooled)),
            ],
            dim=1,
        )


def test_inception_equals_paper_module():
    keys = "out_1x1=3\nreduce_3x3=2\nout_3x3=4\nreduce_5x5=2\nout_5x5=5\npool_proj=6\n"
    model = netcfg.build(_net(6, 5, 4, f"[inception]\n{keys}"))
    assert model.spec.layers[0].shape == (3 + 4 + 5 + 6, 5, 6)
    ref = RefInception(4, 3, 2, 4, 2, 5, 6)
    ours = model.layers[0]
    pairs = [
        (ours.branch1.conv, ref.b1),
        (ours.branch2[0].conv, ref.b2r),
        (ours.branch2[1].conv, ref.b2),
        (ours.branch3[0].conv, ref.b3r),
        (ours.branch3[1].conv, ref.b3),
        (ours.branch4[1].conv, ref.b4),
    ]
    for conv, ref_conv in pairs:
        assert conv.kernel_size == ref_conv.kernel_size and conv.bias is not None
        conv.load_state_dict(ref_conv.state_dict())
    x = torch.randn(2, 4, 5, 6)
    torch.testing.assert_close(model(x), ref(x))
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ref.parameters())


def test_resize_is_nearest_to_the_like_layers_size():
    cfg = _net(
        7,
        5,
        2,
        "[convolutional]\nfilters=3\nsize=1\nactivation=linear\nname=big\n"
        "[maxpool]\nsize=2\nstride=2\npadding=0\n[resize]\nlike=big\n",
    )
    model = netcfg.build(cfg)
    assert model.spec.layers[2].shape == (3, 5, 7)
    x = torch.randn(1, 2, 5, 7)
    small, out = model(x, return_layers=[1, 2]).values()
    h, w = small.shape[-2:]
    expected = torch.empty(1, 3, 5, 7)
    for i in range(5):
        for j in range(7):
            expected[..., i, j] = small[..., math.floor(i * h / 5), math.floor(j * w / 7)]
    torch.testing.assert_close(out, expected)


def test_adaptive_avgpool_averages_torchs_bins():
    model = netcfg.build(_net(7, 5, 2, "[adaptive_avgpool]\nsize=3,2\n"))
    assert model.spec.layers[0].shape == (2, 3, 2)
    x = torch.randn(1, 2, 5, 7)
    expected = torch.empty(1, 2, 3, 2)
    for i in range(3):
        for j in range(2):
            top, bottom = math.floor(i * 5 / 3), math.ceil((i + 1) * 5 / 3)
            left, right = math.floor(j * 7 / 2), math.ceil((j + 1) * 7 / 2)
            expected[..., i, j] = x[..., top:bottom, left:right].mean(dim=(-2, -1))
    torch.testing.assert_close(model(x), expected)


@pytest.mark.parametrize(
    "body",
    [
        "[bottleneck]\nfilters=16\nstride=2\n[bottleneck]\nfilters=16\n",
        "[basicblock]\nfilters=4\nstride=2\n",
        "[inception]\nout_1x1=2\nreduce_3x3=2\nout_3x3=2\nreduce_5x5=2\nout_5x5=2\npool_proj=2\n",
    ],
)
def test_gradients_reach_every_parameter(body):
    model = netcfg.build(_net(6, 6, 4, body)).train()
    model(torch.randn(2, 4, 6, 6)).square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    "body, line, key, words",
    [
        ("[bottleneck]\nfilters=30\n", 6, "filters", "multiple of expansion=4"),
        ("[bottleneck]\nfilters=32\nstride=0\n", 7, "stride", "greater than 0"),
        ("[bottleneck]\nfilters=32\ngroups=2\nwidth_per_group=4\n", 5, None, "is 0"),
        ("[basicblock]\n", 5, "filters", "missing"),
        ("[inception]\nout_1x1=2\nreduce_3x3=2\nout_3x3=2\nreduce_5x5=2\nout_5x5=2\n", 5, "pool_proj", "missing"),
        ("[resize]\nlike=nowhere\n", 6, "like", "unknown layer label 'nowhere'"),
        ("[adaptive_avgpool]\nsize=0\n", 6, "size", "must be positive"),
    ],
)
def test_bad_values_are_cfg_errors_with_lines(body, line, key, words):
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.parse(_net(8, 8, 4, body))
    (item,) = exc.value.items
    assert (item.line, item.key) == (line, key) and words in item.message, str(item)
