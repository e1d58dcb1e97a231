"""The bundled classic backbones: parameter counts (facts), shapes, and equality with reference models."""

import pytest
import torch
from torchvision_refs import FeaturePyramidNetwork

import netcfg

PARAMETERS = {
    "resnet50-backbone": 23_508_032,
    "resnet50-fpn": 26_852_416,
}


def _count(name: str) -> int:
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        model = netcfg.build(name)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name, count", PARAMETERS.items())
def test_parameter_count(name, count):
    assert _count(name) == count


@pytest.mark.parametrize(
    "size, shapes",
    [
        (224, [(256, 56, 56), (256, 28, 28), (256, 14, 14), (256, 7, 7)]),
        (200, [(256, 50, 50), (256, 25, 25), (256, 13, 13), (256, 7, 7)]),
    ],
)
def test_fpn_returns_p2_to_p5(size, shapes):
    spec = netcfg.parse("resnet50-fpn", width=size, height=size)
    assert [spec.layers[i].shape for i in spec.outputs] == shapes
    assert spec.outputs == tuple(spec.labels[p] for p in ("p2", "p3", "p4", "p5"))
    stages = [spec.layers[spec.labels[f"backbone.c{k}"]].shape for k in (2, 3, 4, 5)]
    assert [c for c, _, _ in stages] == [256, 512, 1024, 2048]
    assert [h for _, h, _ in stages] == [h for _, h, _ in shapes]


def test_fpn_equals_torchvision_feature_pyramid_network():
    model = netcfg.build("resnet50-fpn", width=72, height=56)  # not multiples of 32: resizing matters
    labels = model.spec.labels
    stage_layers = [labels[f"backbone.c{k}"] for k in (2, 3, 4, 5)]
    ref = FeaturePyramidNetwork([256, 512, 1024, 2048], 256)
    for k in (2, 3, 4, 5):
        inner = model.layers[labels["inner5" if k == 5 else f"lateral{k}"]].conv
        outer = model.layers[labels[f"p{k}"]].conv
        ref.inner_blocks[k - 2].load_state_dict(inner.state_dict())
        ref.layer_blocks[k - 2].load_state_dict(outer.state_dict())
    x = torch.randn(1, 3, 56, 72)
    with torch.no_grad():
        stages = list(model(x, return_layers=stage_layers).values())
        outs = model(x)
        expected = ref(stages)
    assert [tuple(o.shape[-2:]) for o in outs] == [(14, 18), (7, 9), (4, 5), (2, 3)]
    for out, exp in zip(outs, expected):
        torch.testing.assert_close(out, exp)
    fpn_parameters = sum(p.numel() for p in ref.parameters())
    assert fpn_parameters == PARAMETERS["resnet50-fpn"] - PARAMETERS["resnet50-backbone"]


def test_backbone_cfg_alone_ends_at_c5():
    spec = netcfg.parse("resnet50-backbone")
    assert spec.outputs == (spec.labels["c5"],) == (len(spec.layers) - 1,)
    assert spec.layers[-1].shape == (2048, 7, 7)
