"""The bundled resnet50-fpn-se.cfg (and its parts resnet50-se-backbone.cfg, resnet50-se-block*.cfg):
resnet50-fpn.cfg with Squeeze-and-Excitation in every bottleneck's residual branch."""

import pytest
import torch
from torch import nn
from torchvision_refs import Bottleneck, FeaturePyramidNetwork, ResNet, randomize_batchnorm

import netcfg

RESNET50_FPN = 26_852_416
RESNET50_BACKBONE = 23_508_032
RESNET50 = 25_557_032
SE_RESNET50 = 28_088_024  # SE-ResNet-50 with its 1000-class classifier (e.g. Cadene's and osmr's se_resnet50)
#: ResNet-50's stages: (output channels, bottlenecks).
STAGES = [(256, 3), (512, 4), (1024, 6), (2048, 3)]
REDUCTION = 16


def _se_parameters(channels: int) -> int:
    """`[se]`'s parameters: biased C → max(1, C // r) → C fully connected layers."""
    hidden = max(1, channels // REDUCTION)
    return (channels * hidden + hidden) + (hidden * channels + channels)


SE_BLOCKS = sum(n * _se_parameters(c) for c, n in STAGES)


class SqueezeExcitation(nn.Module):
    """Hu et al. 2018, Fig. 3: global average pool, FC C → C/16 + ReLU, FC C/16 → C + sigmoid, rescale."""

    def __init__(self, channels: int):
        super().__init__()
        self.fc1 = nn.Linear(channels, channels // REDUCTION)
        self.fc2 = nn.Linear(channels // REDUCTION, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3))))))
        return x * gate[:, :, None, None]


class SEBottleneck(Bottleneck):
    """The SE-ResNet module: SE on the residual branch after bn3, before the addition."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__(inplanes, planes, stride)
        self.se = SqueezeExcitation(planes * self.expansion)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.se(self.bn3(self.conv3(out)))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def _reference_parts(block: SEBottleneck) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """A reference block's conv/BN pairs in the order the cfg writes them: conv1..conv3, projection."""
    pairs = [(block.conv1, block.bn1), (block.conv2, block.bn2), (block.conv3, block.bn3)]
    return pairs + ([tuple(block.downsample)] if block.downsample is not None else [])


def _copy_se_resnet(model: netcfg.Network, ref: ResNet, last_layer: int) -> None:
    """Reference weights → the cfg's layers 0..last_layer, matched in order (strict: shapes must agree)."""
    blocks = [block for stage in (ref.layer1, ref.layer2, ref.layer3, ref.layer4) for block in stage]
    pairs = [(ref.conv1, ref.bn1)] + [pair for block in blocks for pair in _reference_parts(block)]
    layers = model.spec.layers[: last_layer + 1]
    convs = [model.layers[layer.index] for layer in layers if layer.section.type_name == "convolutional"]
    ses = [model.layers[layer.index] for layer in layers if layer.section.type_name == "se"]
    for ours, (conv, bn) in zip(convs, pairs, strict=True):
        ours.conv.load_state_dict(conv.state_dict())
        ours.bn.load_state_dict(bn.state_dict())
    for ours, block in zip(ses, blocks, strict=True):
        _copy_se(ours, block.se)


def _copy_se(ours: nn.Module, ref: SqueezeExcitation) -> None:
    """Linear weights → the 1×1 convolutions `[se]` uses for its fully connected layers."""
    ours.fc1.load_state_dict({"weight": ref.fc1.weight[:, :, None, None], "bias": ref.fc1.bias})
    ours.fc2.load_state_dict({"weight": ref.fc2.weight[:, :, None, None], "bias": ref.fc2.bias})


def _count(name: str) -> int:
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        model = netcfg.build(name)
    return sum(p.numel() for p in model.parameters())


def test_se_parameters_agree_with_published_se_resnet50():
    assert RESNET50 + SE_BLOCKS == SE_RESNET50


@pytest.mark.parametrize(
    "name, count",
    [("resnet50-fpn-se", RESNET50_FPN + SE_BLOCKS), ("resnet50-se-backbone", RESNET50_BACKBONE + SE_BLOCKS)],
)
def test_parameter_count_is_resnet50s_plus_16_se_blocks(name, count):
    assert _count(name) == count


def test_every_bottleneck_has_one_se_on_its_branch():
    spec = netcfg.parse("resnet50-se-backbone")
    se_layers = [layer for layer in spec.layers if layer.section.type_name == "se"]
    assert [layer.shape[0] for layer in se_layers] == [c for c, n in STAGES for _ in range(n)]
    for layer in se_layers:
        (add,) = [later for later in spec.layers if layer.index in later.sources]  # only the shortcut reads it
        assert add.section.type_name == "shortcut" and add.section.activation == "relu"
        assert spec.layers[layer.index - 1].section.activation == "linear"  # after the branch's last BN


@pytest.mark.parametrize(
    "size, shapes",
    [
        (224, [(256, 56, 56), (256, 28, 28), (256, 14, 14), (256, 7, 7)]),
        (160, [(256, 40, 40), (256, 20, 20), (256, 10, 10), (256, 5, 5)]),
    ],
)
def test_returns_p2_to_p5(size, shapes):
    spec = netcfg.parse("resnet50-fpn-se", width=size, height=size)
    assert [spec.layers[i].shape for i in spec.outputs] == shapes
    assert spec.outputs == tuple(spec.labels[p] for p in ("p2", "p3", "p4", "p5"))


def test_forward_at_224_gives_p2_to_p5():
    model = netcfg.build("resnet50-fpn-se")
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 224, 224))
    assert [tuple(o.shape) for o in outs] == [(1, 256, 56, 56), (1, 256, 28, 28), (1, 256, 14, 14), (1, 256, 7, 7)]
    assert all(torch.isfinite(o).all() for o in outs)


def _fpn_view(spec: netcfg.Spec) -> list[tuple]:
    """Each layer after the backbone: its section and what it reads, as FPN positions or backbone labels."""
    end = spec.labels["backbone"]
    names = {i: frozenset(k for k, v in spec.labels.items() if v == i) for i in range(end + 1)}
    return [
        (layer.section, tuple(s - end if s > end else names[s] for s in layer.sources))
        for layer in spec.layers[end + 1 :]
    ]


def test_the_fpn_is_resnet50_fpns():
    """Everything after the backbone: the same sections, reading the same backbone stages."""
    se, plain = netcfg.parse("resnet50-fpn-se"), netcfg.parse("resnet50-fpn")
    assert _fpn_view(se) == _fpn_view(plain)
    assert set(se.labels) == set(plain.labels)


def test_batch_norms_use_torchvisions_eps():
    """Darknet's normalize_cpu divides by sqrt(var + .00001f); torchvision's BatchNorm2d default is 1e-5."""
    model = netcfg.build("resnet50-se-block256", width=2, height=2)
    eps = {m.eps for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
    assert eps == {nn.BatchNorm2d(1).eps} == {1e-5}


def test_one_se_block_file_equals_the_reference_block():
    model = netcfg.build("resnet50-se-block512", width=5, height=4)
    ref = SEBottleneck(512, 128)
    randomize_batchnorm(ref)
    ref.eval()
    convs = [model.layers[i] for i in (0, 1, 2)]
    for ours, (conv, bn) in zip(convs, _reference_parts(ref), strict=True):
        ours.conv.load_state_dict(conv.state_dict())
        ours.bn.load_state_dict(bn.state_dict())
    _copy_se(model.layers[3], ref.se)
    x = torch.randn(2, 512, 4, 5)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x))


def test_fpn_se_equals_se_resnet50_with_torchvision_fpn():
    model = netcfg.build("resnet50-fpn-se", width=72, height=56)  # not multiples of 32: resizing matters
    labels = model.spec.labels
    ref = ResNet(SEBottleneck, [3, 4, 6, 3])
    randomize_batchnorm(ref)
    ref.eval()
    _copy_se_resnet(model, ref, labels["backbone"])
    fpn = FeaturePyramidNetwork([256, 512, 1024, 2048], 256)
    for k in (2, 3, 4, 5):
        fpn.inner_blocks[k - 2].load_state_dict(
            model.layers[labels["inner5" if k == 5 else f"lateral{k}"]].conv.state_dict()
        )
        fpn.layer_blocks[k - 2].load_state_dict(model.layers[labels[f"p{k}"]].conv.state_dict())
    x = torch.randn(1, 3, 56, 72)
    with torch.no_grad():
        outs, expected = model(x), fpn(ref.features(x))
    assert [tuple(o.shape[-2:]) for o in outs] == [(14, 18), (7, 9), (4, 5), (2, 3)]
    for out, exp in zip(outs, expected, strict=True):
        torch.testing.assert_close(out, exp)
