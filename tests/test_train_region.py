"""The [region] loss's gradient at the head's input is darknet's l.delta, against a transcription of
region_layer.c (tests/train_darknet_region.py) on seeded inputs and truths."""

from __future__ import annotations

import pytest
import torch
from test_train_loss import TRUTHS, _targets
from train_darknet_region import RegionLayer, forward_region_layer

import netcfg
from netcfg.train import DarknetLoss

ANCHORS = [(0.6, 0.8), (1.5, 1.2), (2.5, 3.0)]
CLASSES, GRID = 3, 6


def _run(keys: str, reference: dict, seed: int, seen: int):
    anchors = ", ".join(f"{w},{h}" for w, h in ANCHORS)
    cfg = (
        f"[net]\nwidth={GRID * 8}\nheight={GRID * 8}\nchannels=3\n"
        "[convolutional]\nfilters=8\nsize=3\nstride=8\npad=1\nactivation=leaky\n"
        f"[convolutional]\nfilters={3 * (CLASSES + 5)}\nsize=1\nactivation=linear\n"
        f"[region]\nanchors={anchors}\nnum=3\nclasses={CLASSES}\n{keys}"
    )
    torch.manual_seed(seed)
    model = netcfg.build(cfg).double().train()
    with torch.no_grad():
        model.layers[1].conv.bias.uniform_(-2, 2)
    loss = DarknetLoss(model)
    loss.seen = seen
    captured = {}

    def keep(module, args, output):
        output.retain_grad()
        captured["input"] = output

    model.layers[1].register_forward_hook(keep)
    x = torch.rand(len(TRUTHS), 3, GRID * 8, GRID * 8, dtype=torch.float64) * 4 - 2
    cost = loss(model(x), _targets())
    cost.backward()
    head_input = captured["input"]
    biases = [v for pair in ANCHORS for v in pair]
    softmax = "softmax=1" in keys
    layer = RegionLayer(GRID, GRID, 3, CLASSES, biases, softmax, **reference)
    delta = forward_region_layer(layer, head_input.detach().flatten().tolist(), TRUTHS, len(TRUTHS), seen)
    return head_input.grad, torch.tensor(delta, dtype=torch.float64).reshape(head_input.shape), cost


CASES = {
    "defaults_softmax": ("softmax=1\n", {}, 0),
    "past_12800": ("softmax=1\n", {}, 12800),
    "scales_rescore_bias_match": (
        "softmax=1\nobject_scale=5\nnoobject_scale=0.5\nclass_scale=2\ncoord_scale=1.5\nrescore=1\nbias_match=1\nthresh=.2\n",
        {"object_scale": 5, "noobject_scale": 0.5, "class_scale": 2, "coord_scale": 1.5, "rescore": 1}
        | {"bias_match": 1, "thresh": 0.2},
        20000,
    ),
    "classfix_focal": ("softmax=1\nclassfix=-1\nfocal_loss=1\n", {"classfix": -1, "focal_loss": 1}, 64),
    "raw_classes": ("", {}, 64),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_at_the_head_input_is_darknets_delta(case, seed):
    keys, reference, seen = CASES[case]
    grad, delta, cost = _run(keys, reference, seed, seen)
    assert delta.abs().sum() > 0
    torch.testing.assert_close(grad, -delta, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(cost, (delta * delta).sum())


def test_tree_and_classfix_are_refused_by_name():
    cfg = "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=7\nsize=1\n[region]\nclasses=2\nclassfix=1\n"
    with pytest.raises(netcfg.NetcfgError, match=r"layer 1 \[region\]: the loss does not cover"):
        DarknetLoss(netcfg.build(cfg))
