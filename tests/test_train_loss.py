"""The [yolo] loss's gradient at the head's input is darknet's l.delta, checked term by term against an
independent transcription of yolo_layer.c (tests/train_darknet_yolo.py) on seeded inputs and truths."""

from __future__ import annotations

import pytest
import torch
from train_darknet_yolo import YoloLayer, forward_yolo_layer

import netcfg
from netcfg.train import DarknetLoss

ANCHORS = [(4, 5), (8, 9), (12, 10), (20, 20)]
CLASSES = 3
GRID = 6
#: Per image (x, y, w, h, class); image 0 has two truths in one cell and one of a class the head lacks,
#: a small one off its cell's centre, image 1 an empty row (x = 0) ending its list early, as darknet reads it.
TRUTHS = [
    [(0.30, 0.40, 0.20, 0.25, 1), (0.32, 0.41, 0.30, 0.20, 2), (0.70, 0.75, 0.55, 0.60, 0), (0.5, 0.5, 0.1, 0.1, 7)]
    + [(0.30, 0.62, 0.04, 0.04, 0)],
    [(0.10, 0.85, 0.15, 0.10, 2), (0.55, 0.20, 0.40, 0.35, 1), (0.0, 0.0, 0.0, 0.0, 0), (0.5, 0.5, 0.2, 0.2, 1)],
]


def _cfg(keys: str) -> str:
    anchors = ", ".join(f"{w},{h}" for w, h in ANCHORS)
    return (
        f"[net]\nwidth={GRID * 8}\nheight={GRID * 8}\nchannels=3\n"
        "[convolutional]\nfilters=8\nsize=3\nstride=8\npad=1\nactivation=leaky\n"
        f"[convolutional]\nfilters={3 * (CLASSES + 5)}\nsize=1\nactivation=linear\n"
        f"[yolo]\nmask=0,1,2\nanchors={anchors}\nnum=4\nclasses={CLASSES}\n{keys}"
    )


def _targets() -> torch.Tensor:
    rows = torch.zeros(len(TRUTHS), max(map(len, TRUTHS)), 5, dtype=torch.float64)
    rows[..., 0] = -1
    for b, truths in enumerate(TRUTHS):
        for t, (x, y, w, h, c) in enumerate(truths):
            rows[b, t] = torch.tensor([c, x, y, w, h], dtype=torch.float64)
    return rows


def _grad_and_reference(keys: str, seed: int, reference_keys: dict):
    torch.manual_seed(seed)
    model = netcfg.build(_cfg(keys)).double().train()
    with torch.no_grad():
        bias = model.layers[1].conv.bias
        bias.uniform_(-3, 3)
        bias[2:4] = -3  # anchor 0 predicts tiny boxes: apart from the small truth assigned to it
        bias[CLASSES + 10 : 2 * CLASSES + 10] = -2.5  # anchor 1 scores no class over 0.25: its overlaps match no truth
    loss = DarknetLoss(model)
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
    layer = YoloLayer(GRID, GRID, 3, 4, [0, 1, 2], CLASSES, biases, GRID * 8, GRID * 8, **reference_keys)
    delta = forward_yolo_layer(layer, head_input.detach().flatten().tolist(), TRUTHS, len(TRUTHS))
    expected = torch.tensor(delta, dtype=torch.float64).reshape(head_input.shape)
    return head_input.grad, expected, cost


CASES = {
    "defaults": ("", {}),
    "ignore_low": ("ignore_thresh=0.05\n", {"ignore_thresh": 0.05}),
    "giou": ("iou_loss=giou\niou_normalizer=0.07\n", {"iou_loss": "giou", "iou_normalizer": 0.07}),
    "diou": ("iou_loss=diou\n", {"iou_loss": "diou"}),
    "ciou_max_delta": ("iou_loss=ciou\nmax_delta=0.05\n", {"iou_loss": "ciou", "max_delta": 0.05}),
    "iou": ("iou_loss=iou\n", {"iou_loss": "iou"}),
    "iou_thresh": (
        "iou_thresh=0.2\nobjectness_smooth=1\nignore_thresh=0.1\nscale_x_y=1.2\n",
        {"iou_thresh": 0.2, "objectness_smooth": 1, "ignore_thresh": 0.1, "scale_x_y": 1.2},
    ),
    "iou_thresh_ciou_kind": (
        "iou_thresh=0.1\niou_thresh_kind=ciou\niou_loss=ciou\n",
        {"iou_thresh": 0.1, "iou_thresh_kind": "ciou", "iou_loss": "ciou"},
    ),
    "new_coords": (
        "new_coords=1\nscale_x_y=2.0\niou_loss=ciou\n",
        {"new_coords": 1, "scale_x_y": 2.0, "iou_loss": "ciou"},
    ),
    "new_coords_mse": ("new_coords=1\n", {"new_coords": 1}),
    "smoothing_normalisers": (
        "label_smooth_eps=0.1\nobj_normalizer=0.4\ncls_normalizer=0.5\ncounters_per_class=10,40,20\n",
        {"label_smooth_eps": 0.1, "obj_normalizer": 0.4, "cls_normalizer": 0.5, "counters_per_class": [10, 40, 20]},
    ),
    "focal": ("focal_loss=1\n", {"focal_loss": 1}),
    "truth_thresh": (
        "truth_thresh=0.05\nignore_thresh=0.02\nobjectness_smooth=1\n",
        {"truth_thresh": 0.05, "ignore_thresh": 0.02, "objectness_smooth": 1},
    ),
    "max_boxes": ("max=2\n", {"max_boxes": 2}),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_at_the_head_input_is_darknets_delta(case, seed):
    keys, reference = CASES[case]
    grad, delta, cost = _grad_and_reference(keys, seed, reference)
    assert delta.abs().sum() > 0
    torch.testing.assert_close(grad, -delta, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(cost, (delta * delta).sum())


def test_delta_normalizer_scales_the_gradient_not_the_cost():
    grad, delta, cost = _grad_and_reference("delta_normalizer=0.25\n", 0, {})
    torch.testing.assert_close(grad, -0.25 * delta, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(cost, (delta * delta).sum())
