"""Attention in whole networks: `[se]` equals darknet's own SE expansion, and the bundled example
cfgs are their base networks plus the attention blocks, every reference still on its layer."""

from __future__ import annotations

import re

import pytest
import torch

import netcfg
from netcfg.spec import NETWORK_INPUT


def randomize(module: torch.nn.Module) -> None:
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point():
                fresh = (
                    torch.rand(t.shape, generator=gen) + 0.5
                    if name.endswith("running_var")
                    else torch.randn(t.shape, generator=gen)
                )
                t.copy_(fresh * 0.5)


NET = "[net]\nwidth=6\nheight=5\nchannels=4\n"
FEATURES = "[convolutional]\nfilters=32\nsize=3\npad=1\nbatch_normalize=1\nactivation=leaky\n"


def darknet_se(hidden: int, act: str) -> str:
    """Darknet's channel attention as efficientnet_b0.cfg writes it."""
    return (
        f"[avgpool]\n[convolutional]\nfilters={hidden}\nsize=1\nstride=1\nactivation={act}\n"
        "[convolutional]\nfilters=32\nsize=1\nstride=1\nactivation=logistic\n[scale_channels]\nfrom=-4\n"
    )


def assert_se_matches_expansion(expansion: str, se_keys: str) -> None:
    darknet = netcfg.build(NET + FEATURES + expansion)
    plug_in = netcfg.build(NET + FEATURES + "[se]\n" + se_keys)
    assert [layer.section.type_name for layer in darknet.spec.layers] == [
        "convolutional",
        "avgpool",
        "convolutional",
        "convolutional",
        "scale_channels",
    ]
    randomize(darknet)
    se = plug_in.layers[1]
    with torch.no_grad():
        plug_in.layers[0].load_state_dict(darknet.layers[0].state_dict())
        for fc, conv in ((se.fc1, darknet.layers[2].conv), (se.fc2, darknet.layers[3].conv)):
            fc.weight.copy_(conv.weight)
            fc.bias.copy_(conv.bias)
    x = torch.randn(2, 4, 5, 6)
    torch.testing.assert_close(plug_in(x), darknet(x))
    assert sum(p.numel() for p in plug_in.parameters()) == sum(p.numel() for p in darknet.parameters())


@pytest.mark.parametrize("act", ["swish", "relu"])
def test_se_equals_darknet_avgpool_conv_conv_scale_channels(act):
    assert_se_matches_expansion(darknet_se(8, act), f"reduction=4\nactivation={act}\n")


def test_se_equals_the_first_se_of_efficientnet_b0(shared_cfgs):
    text = (shared_cfgs / "efficientnet_b0.cfg").read_text()
    expansion = re.search(r"\[avgpool\].*?from=-4\n", text, re.DOTALL).group(0)
    assert "activation=swish" in expansion and "filters=8" in expansion and "filters=32" in expansion
    assert_se_matches_expansion(expansion, "reduction=4\nactivation=swish\n")


# ---------------------------------------------------------------- example networks


def se_params(c: int) -> int:
    hidden = max(1, c // 16)
    return c * hidden + hidden + hidden * c + c


def cbam_params(c: int) -> int:
    hidden = max(1, c // 16)
    return 2 * c * hidden + 2 * 7 * 7


EXAMPLES = {
    "yolov3-tiny-se.cfg": ("yolov3-tiny.cfg", "se", (6, 8, 10, 12), se_params),
    "yolov3-cbam.cfg": ("yolov3.cfg", "cbam", (4, 11, 36, 61, 74), cbam_params),
}


def param_count(spec: netcfg.Spec) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in netcfg.build(spec).parameters())


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_is_its_base_plus_attention_after_the_stages(shared_cfgs, name):
    base_name, kind, after, block_params = EXAMPLES[name]
    base = netcfg.parse(shared_cfgs / base_name, width=64, height=64)
    ours = netcfg.parse(name, width=64, height=64)

    def moved(i: int) -> int:
        return i + sum(a < i for a in after)

    def reads(s: int) -> int:
        """Where a reference to base layer s must now point: its attention block, if it has one."""
        return NETWORK_INPUT if s == NETWORK_INPUT else moved(s) + (s in after)

    blocks = [moved(a) + 1 for a in after]
    assert [layer.index for layer in ours.layers if layer.section.type_name == kind] == blocks
    assert len(ours.layers) == len(base.layers) + len(after)
    for layer in base.layers:
        mine = ours.layers[moved(layer.index)]
        assert mine.section.type_name == layer.section.type_name and mine.shape == layer.shape
        assert mine.sources == tuple(reads(s) for s in layer.sources), f"base layer {layer.index}"
    for b in blocks:
        assert ours.layers[b].sources == (b - 1,) and ours.layers[b].shape == ours.layers[b - 1].shape
    assert ours.outputs == tuple(moved(i) for i in base.outputs)
    added = sum(block_params(ours.layers[b].shape[0]) for b in blocks)
    assert param_count(ours) == param_count(base) + added


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_builds_and_runs_small(name):
    model = netcfg.build(name.removesuffix(".cfg"), width=64, height=64)
    with torch.no_grad():
        outputs = model(torch.rand(1, 3, 64, 64))
    heads = [model.spec.layers[i] for i in model.spec.outputs]
    assert len(outputs) == len(heads) and all(torch.isfinite(o).all() for o in outputs)
    for out, head in zip(outputs, heads):
        c, h, w = head.shape
        assert out.shape == (1, 3 * h * w, c // 3)
