"""The bundled classic backbones: parameter counts (facts), shapes, and equality with reference models."""

import pytest
import torch
from torch import nn
from torchvision_refs import VGG, Bottleneck, FeaturePyramidNetwork, ResNet, randomize_batchnorm

import netcfg

PARAMETERS = {
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "googlenet": 6_998_552,
    "resnet50": 25_557_032,
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


@pytest.mark.parametrize("name", ["vgg16", "vgg19", "googlenet", "resnet50"])
@pytest.mark.parametrize("size", [224, 160])
def test_classifiers_give_1000_logits_at_any_size(name, size):
    spec = netcfg.parse(name, width=size, height=size + 32)
    assert spec.layers[-1].shape == (1000, 1, 1)


def test_vgg_features_are_7x7_at_224_so_the_adaptive_pool_is_the_identity():
    spec = netcfg.parse("vgg16")
    (pool,) = [layer for layer in spec.layers if layer.section.type_name == "adaptive_avgpool"]
    assert pool.input_shapes == ((512, 7, 7),) == (pool.shape,)


def test_googlenet_runs_small():
    model = netcfg.build("googlenet", width=64, height=64)
    out = model(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 1000, 1, 1) and torch.isfinite(out).all()
    assert [layer.shape[0] for layer in model.spec.layers if layer.section.type_name == "inception"] == [
        256,
        480,
        512,
        512,
        512,
        528,
        832,
        832,
        1024,
    ]


def _multiply_adds(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds of every Conv2d and Linear in one forward pass, counted by hooks."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += output[0].numel() * (module.in_channels // module.groups) * kh * kw
        else:
            total += module.in_features * module.out_features

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        out = model(x)
    for hook in hooks:
        hook.remove()
    return total, out


def test_resnet50_is_4_1_giga_multiply_adds_at_224():
    model = netcfg.build("resnet50")
    macs, out = _multiply_adds(model, torch.randn(1, 3, 224, 224))
    assert out.shape == (1, 1000, 1, 1) and torch.isfinite(out).all()
    assert abs(macs / 1e9 - 4.089) < 0.005  # torchvision's published 4.09 GFLOPS (multiply-adds)
    assert abs(2 * macs / 1e9 - 8.18) < 0.01  # darknet BFLOPs count 2 per multiply-add


def test_torchvision_resnet50_state_dict_loads_and_outputs_match():
    ref = ResNet(Bottleneck, [3, 4, 6, 3])
    randomize_batchnorm(ref)
    ref.eval()
    model = netcfg.build("resnet50")
    netcfg.load_state_dict_from(model, ref.state_dict())
    x = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        torch.testing.assert_close(model(x).flatten(1), ref(x))


def test_torchvision_vgg16_state_dict_loads_and_outputs_match():
    ref = VGG("vgg16").eval()
    model = netcfg.build("vgg16")
    netcfg.load_state_dict_from(model, ref.state_dict())
    x = torch.randn(1, 3, 48, 40)  # 1×1 features, upsampled to 7×7 by both adaptive pools
    with torch.no_grad():
        torch.testing.assert_close(model(x).flatten(1), ref(x))


META_COPY = pytest.mark.filterwarnings("ignore:.*meta parameter")  # loading into meta tensors copies nothing


@META_COPY
@pytest.mark.parametrize("name", ["vgg19", "resnet50"])
def test_every_torchvision_key_has_a_place(name):
    with torch.device("meta"):
        ref = VGG(name) if name.startswith("vgg") else ResNet(Bottleneck, [3, 4, 6, 3])
        model = netcfg.build(name)
    netcfg.load_state_dict_from(model, ref.state_dict())
    mapped = netcfg.pretrained.torchvision_names(model)
    assert sorted(mapped.values()) == sorted(ref.state_dict())


def _meta_resnet50():
    with torch.device("meta"):
        return netcfg.build("resnet50"), ResNet(Bottleneck, [3, 4, 6, 3]).state_dict()


@META_COPY
def test_old_checkpoints_without_num_batches_tracked_load():
    model, state = _meta_resnet50()
    netcfg.load_state_dict_from(model, {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")})


def test_mismatched_state_dicts_are_refused_with_every_problem():
    model, state = _meta_resnet50()
    del state["layer4.2.bn3.weight"]
    state["aux.fc.weight"] = torch.empty(3, device="meta")
    state["fc.weight"] = torch.empty(10, 2048, device="meta")
    with pytest.raises(netcfg.WeightsError) as exc:
        netcfg.load_state_dict_from(model, state)
    message = str(exc.value)
    assert "missing keys (1): layer4.2.bn3.weight" in message
    assert "unexpected keys (1): aux.fc.weight" in message
    assert "shape mismatches (1): fc.weight is (10, 2048) in the state dict, (1000, 2048) in the network" in message


def test_a_network_without_a_torchvision_counterpart_is_refused():
    with torch.device("meta"):
        model = netcfg.build("googlenet")
    with pytest.raises(netcfg.WeightsError, match=r"layer 7 \[inception\] has no counterpart"):
        netcfg.load_state_dict_from(model, {})
    with pytest.raises(ValueError, match="unknown layout 'timm'"):
        netcfg.load_state_dict_from(model, {}, layout="timm")
