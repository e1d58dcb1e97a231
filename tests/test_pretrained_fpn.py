"""torchvision ResNet-50 weights onto resnet50-fpn.cfg: the backbone loads, the FPN layers are reported
as not covered and keep their initialisation. The state dict is written here by hand with torchvision's
key names and shapes (torchvision is not a dependency)."""

import pytest
import torch

import netcfg
from netcfg.weights import PartialWeightsWarning

#: ResNet-50's stages: (bottleneck width, blocks); a block's output is 4 × its width.
STAGES = [(64, 3), (128, 4), (256, 6), (512, 3)]
#: resnet50-fpn.cfg's layers after the backbone (layer 17) holding parameters: laterals and outputs.
FPN_LAYERS = (18, 19, 21, 25, 27, 31, 33, 37)


def _bn(prefix: str, n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}.weight": torch.randn(n, generator=gen),
        f"{prefix}.bias": torch.randn(n, generator=gen),
        f"{prefix}.running_mean": torch.randn(n, generator=gen),
        f"{prefix}.running_var": torch.rand(n, generator=gen) + 0.5,
        f"{prefix}.num_batches_tracked": torch.tensor(7),
    }


def torchvision_resnet50_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """torchvision.models.resnet50().state_dict()'s keys and shapes, seeded random values."""
    gen = torch.Generator().manual_seed(seed)
    state = {"conv1.weight": torch.randn(64, 3, 7, 7, generator=gen), **_bn("bn1", 64, gen)}
    inplanes = 64
    for stage, (width, blocks) in enumerate(STAGES, start=1):
        for block in range(blocks):
            p = f"layer{stage}.{block}"
            state[f"{p}.conv1.weight"] = torch.randn(width, inplanes, 1, 1, generator=gen)
            state.update(_bn(f"{p}.bn1", width, gen))
            state[f"{p}.conv2.weight"] = torch.randn(width, width, 3, 3, generator=gen)
            state.update(_bn(f"{p}.bn2", width, gen))
            state[f"{p}.conv3.weight"] = torch.randn(4 * width, width, 1, 1, generator=gen)
            state.update(_bn(f"{p}.bn3", 4 * width, gen))
            if block == 0:
                state[f"{p}.downsample.0.weight"] = torch.randn(4 * width, inplanes, 1, 1, generator=gen)
                state.update(_bn(f"{p}.downsample.1", 4 * width, gen))
            inplanes = 4 * width
    state["fc.weight"] = torch.randn(1000, 2048, generator=gen)
    state["fc.bias"] = torch.randn(1000, generator=gen)
    return state


def test_resnet50_weights_load_onto_the_fpn_backbone_and_the_fpn_is_reported():
    model = netcfg.build("resnet50-fpn", width=64, height=64)
    fpn_before = {k: v.clone() for k, v in model.state_dict().items() if int(k.split(".")[1]) > 17}
    state = torchvision_resnet50_state_dict()
    with pytest.warns(PartialWeightsWarning, match=r"layers 18 \[convolutional\].*37 \[convolutional\]") as caught:
        uncovered = netcfg.load_state_dict_from(model, state)
    assert uncovered == FPN_LAYERS
    assert "unused from the state dict: fc.weight, fc.bias" in str(caught[0].message)
    ours = model.state_dict()
    torch.testing.assert_close(ours["layers.0.conv.weight"], state["conv1.weight"], rtol=0, atol=0)
    torch.testing.assert_close(ours["layers.0.bn.running_var"], state["bn1.running_var"], rtol=0, atol=0)
    torch.testing.assert_close(ours["layers.9.conv2.conv.weight"], state["layer3.0.conv2.weight"], rtol=0, atol=0)
    torch.testing.assert_close(ours["layers.17.conv3.bn.bias"], state["layer4.2.bn3.bias"], rtol=0, atol=0)
    torch.testing.assert_close(ours["layers.15.downsample.bn.weight"], state["layer4.0.downsample.1.weight"])
    loaded = {t for t in state if not t.startswith("fc.")}
    assert set(netcfg.pretrained.torchvision_names(model).values()) == loaded
    for key, before in fpn_before.items():
        torch.testing.assert_close(ours[key], before, rtol=0, atol=0)


def test_a_backbone_state_dict_missing_a_key_is_still_refused():
    model = netcfg.build("resnet50-fpn", width=64, height=64)
    state = torchvision_resnet50_state_dict()
    del state["layer2.1.conv2.weight"]
    with pytest.raises(netcfg.WeightsError, match=r"missing keys \(1\): layer2.1.conv2.weight"):
        netcfg.load_state_dict_from(model, state)


def test_a_complete_resnet_load_reports_nothing_uncovered(recwarn):
    model = netcfg.build("resnet50", width=64, height=64)
    assert netcfg.load_state_dict_from(model, torchvision_resnet50_state_dict()) == ()
    assert not [w for w in recwarn if issubclass(w.category, PartialWeightsWarning)]
