"""The bundled cfgs: found by name, published parameter counts, same layers as darknet's files."""

import pytest
import torch

import netcfg
from netcfg.resources import bundled_cfgs

#: Published parameter counts at 80 classes.
PARAMS = {"yolov3": 61_949_149, "yolov3-spp": 62_998_749, "yolov3-tiny": 8_852_366}


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", PARAMS)
def test_parameter_counts_at_80_classes(name):
    model = netcfg.build(f"{name}.cfg", width=64, height=64)
    assert n_params(model) == PARAMS[name]
    outputs = model(torch.randn(1, 3, 64, 64))
    strides = (32, 16, 8)[: len(outputs)]
    assert [tuple(o.shape) for o in outputs] == [(1, 3 * (64 // s) ** 2, 85) for s in strides]


def test_bundled_names_resolve_with_and_without_suffix():
    by_file = netcfg.build("yolov3.cfg", width=32, height=32)
    by_name = netcfg.build("yolov3", width=32, height=32)
    assert by_file.spec.file == by_name.spec.file == "yolov3.cfg"
    assert by_file.spec == by_name.spec
    assert n_params(by_name) == PARAMS["yolov3"]


def test_every_bundled_cfg_is_titled_and_valid():
    for name, path in bundled_cfgs().items():
        assert path.read_text().startswith("# "), f"{name} lacks a header comment"
        spec = netcfg.parse(name)
        assert spec.net.width == spec.net.height


def darknet53_backbone_params() -> int:
    """Darknet-53's layers 0-74 from the paper's table: conv + BN (scale, shift) everywhere."""

    def conv_bn(cin: int, cout: int, k: int) -> int:
        return cin * cout * k * k + 2 * cout

    total, cin = conv_bn(3, 32, 3), 32
    for filters, blocks in ((64, 1), (128, 2), (256, 8), (512, 8), (1024, 4)):
        residual_block = conv_bn(filters, filters // 2, 1) + conv_bn(filters // 2, filters, 3)
        total += conv_bn(cin, filters, 3) + blocks * residual_block
        cin = filters
    return total


def test_darknet53_classifies_into_1000_classes():
    model = netcfg.build("darknet53", width=64, height=64)
    assert [layer.section.type_name for layer in model.spec.layers[-3:]] == ["avgpool", "convolutional", "softmax"]
    assert n_params(model) == darknet53_backbone_params() + 1024 * 1000 + 1000  # + the 1x1 classifier with bias
    probabilities = model(torch.randn(2, 3, 64, 64))
    assert probabilities.shape == (2, 1000, 1, 1)
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(2, 1, 1))


@pytest.mark.parametrize("name", [*PARAMS, "darknet53"])
def test_same_layers_as_darknets_own_cfg(name, shared_cfgs):
    ours = netcfg.parse(name)
    theirs = netcfg.parse(shared_cfgs / f"{name}.cfg", width=ours.net.width, height=ours.net.height)
    assert len(ours.layers) == len(theirs.layers)
    for a, b in zip(ours.layers, theirs.layers):
        assert (a.section, a.sources, a.shape) == (b.section, b.sources, b.shape), f"layer {a.index}"
