"""The [Gaussian_yolo] loss's gradient at the head's input is darknet's l.delta, checked term by term against
an independent transcription of gaussian_yolo_layer.c (tests/train_darknet_gaussian.py) on seeded inputs
and truths."""

from __future__ import annotations

import pytest
import torch
from test_train_loss import ANCHORS, CLASSES, GRID, TRUTHS
from train_darknet_gaussian import GaussianLayer, forward_gaussian_yolo_layer

import netcfg
from netcfg.train import DarknetLoss

PER_ANCHOR = CLASSES + 9
#: The [yolo] test's truths; image 1 also has a row of a class the head lacks with x = 0, which ends
#: darknet's assignment list but not its first pass (which skips the class before looking at x).
GAUSSIAN_TRUTHS = [TRUTHS[0], [TRUTHS[1][0], (0.0, 0.5, 0.2, 0.2, 5), *TRUTHS[1][1:]]]


def _cfg(keys: str) -> str:
    anchors = ", ".join(f"{w},{h}" for w, h in ANCHORS)
    return (
        f"[net]\nwidth={GRID * 8}\nheight={GRID * 8}\nchannels=3\n"
        "[convolutional]\nfilters=8\nsize=3\nstride=8\npad=1\nactivation=leaky\n"
        f"[convolutional]\nfilters={3 * PER_ANCHOR}\nsize=1\nactivation=linear\n"
        f"[Gaussian_yolo]\nmask=0,1,2\nanchors={anchors}\nnum=4\nclasses={CLASSES}\n{keys}"
    )


def _targets() -> torch.Tensor:
    rows = torch.zeros(len(GAUSSIAN_TRUTHS), max(map(len, GAUSSIAN_TRUTHS)), 5, dtype=torch.float64)
    rows[..., 0] = -1
    for b, truths in enumerate(GAUSSIAN_TRUTHS):
        for t, (x, y, w, h, c) in enumerate(truths):
            rows[b, t] = torch.tensor([c, x, y, w, h], dtype=torch.float64)
    return rows


def _grad_and_reference(keys: str, seed: int, reference_keys: dict):
    torch.manual_seed(seed)
    model = netcfg.build(_cfg(keys)).double().train()
    with torch.no_grad():
        bias = model.layers[1].conv.bias
        bias.uniform_(-3, 3)
        bias[4:7:2] = -3  # anchor 0 predicts tiny boxes: apart from the small truth assigned to it
        bias[PER_ANCHOR + 9 : 2 * PER_ANCHOR] = -2.5  # anchor 1 scores no class over 0.25
    loss = DarknetLoss(model)
    captured = {}

    def keep(module, args, output):
        output.retain_grad()
        captured["input"] = output

    model.layers[1].register_forward_hook(keep)
    x = torch.rand(len(GAUSSIAN_TRUTHS), 3, GRID * 8, GRID * 8, dtype=torch.float64) * 4 - 2
    cost = loss(model(x), _targets())
    cost.backward()
    head_input = captured["input"]
    biases = [v for pair in ANCHORS for v in pair]
    layer = GaussianLayer(GRID, GRID, 3, 4, [0, 1, 2], CLASSES, biases, GRID * 8, GRID * 8, **reference_keys)
    delta = forward_gaussian_yolo_layer(layer, head_input.detach().flatten().tolist(), GAUSSIAN_TRUTHS, 2)
    expected = torch.tensor(delta, dtype=torch.float64).reshape(head_input.shape)
    return head_input.grad, expected, cost, loss


CASES = {
    "defaults": ("", {}),
    "ignore_low": ("ignore_thresh=0.05\n", {"ignore_thresh": 0.05}),
    "uc_normalizer": ("uc_normalizer=0.3\niou_normalizer=0.5\n", {"uc_normalizer": 0.3, "iou_normalizer": 0.5}),
    "mse_max_delta": ("max_delta=0.2\n", {"max_delta": 0.2}),
    "giou": ("iou_loss=giou\niou_normalizer=0.07\n", {"iou_loss": "giou", "iou_normalizer": 0.07}),
    "diou": ("iou_loss=diou\n", {"iou_loss": "diou"}),
    "ciou_max_delta": ("iou_loss=ciou\nmax_delta=0.05\n", {"iou_loss": "ciou", "max_delta": 0.05}),
    "iou": ("iou_loss=iou\n", {"iou_loss": "iou"}),
    "iou_thresh_smooth": (
        "iou_thresh=0.2\nobjectness_smooth=1\nignore_thresh=0.1\nscale_x_y=1.2\n",
        {"iou_thresh": 0.2, "objectness_smooth": 1, "ignore_thresh": 0.1, "scale_x_y": 1.2},
    ),
    "iou_thresh_ciou_kind": (
        "iou_thresh=0.1\niou_thresh_kind=ciou\niou_loss=ciou\n",
        {"iou_thresh": 0.1, "iou_thresh_kind": "ciou", "iou_loss": "ciou"},
    ),
    "truth_thresh_smooth": (
        "truth_thresh=0.05\nignore_thresh=0.02\nobjectness_smooth=1\n",
        {"truth_thresh": 0.05, "ignore_thresh": 0.02, "objectness_smooth": 1},
    ),
    "truth_thresh": ("truth_thresh=0.05\nignore_thresh=0.02\n", {"truth_thresh": 0.05, "ignore_thresh": 0.02}),
    "smoothing_normalisers": (
        "label_smooth_eps=0.1\nobj_normalizer=0.4\ncls_normalizer=0.5\ncounters_per_class=10,40,20\n",
        {"label_smooth_eps": 0.1, "obj_normalizer": 0.4, "cls_normalizer": 0.5, "counters_per_class": [10, 40, 20]},
    ),
    "left_top": ("yolo_point=left_top\n", {"yolo_point": "left_top"}),
    "right_bottom_giou": (
        "yolo_point=right_bottom\niou_loss=giou\nignore_thresh=0.1\n",
        {"yolo_point": "right_bottom", "iou_loss": "giou", "ignore_thresh": 0.1},
    ),
    "max_boxes": ("max=2\n", {"max_boxes": 2}),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_at_the_head_input_is_darknets_delta(case, seed):
    keys, reference = CASES[case]
    grad, delta, cost, _ = _grad_and_reference(keys, seed, reference)
    assert delta.abs().sum() > 0
    torch.testing.assert_close(grad, -delta, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(cost, (delta * delta).sum())


def test_every_kind_of_delta_is_exercised():
    """The default case moves each of the 9 + classes entries of some prediction, σs included."""
    _, delta, _, loss = _grad_and_reference("", 0, {})
    moved = delta.reshape(2, 3, PER_ANCHOR, GRID, GRID).abs().amax(dim=(0, 1, 3, 4))
    assert (moved > 0).all()
    assert loss.stats[0].count > 0


def test_delta_normalizer_scales_the_gradient_not_the_cost():
    grad, delta, cost, _ = _grad_and_reference("delta_normalizer=0.25\n", 0, {})
    torch.testing.assert_close(grad, -0.25 * delta, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(cost, (delta * delta).sum())


@pytest.mark.parametrize("value", ["x", "-"])
def test_uc_normalizer_is_validated(value):
    with pytest.raises(netcfg.CfgError, match="uc_normalizer"):
        netcfg.build(_cfg(f"uc_normalizer={value}\n"))
