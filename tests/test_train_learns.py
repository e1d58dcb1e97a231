"""It learns: a tiny detector overfits four generated images with DarknetLoss, darknet_sgd and
darknet_scheduler in a plain loop, then finds their boxes (decoded by hand, and with netcfg.detect)."""

from __future__ import annotations

import pytest
import torch

import netcfg
from netcfg.train import DarknetLoss, collate, darknet_scheduler, darknet_sgd

SIZE = 48
LAYER = "[convolutional]\nfilters={}\nsize=3\nstride={}\npad=1\nbatch_normalize=1\nactivation=leaky\n"
CFG = (
    f"[net]\nwidth={SIZE}\nheight={SIZE}\nchannels=3\nbatch=4\nlearning_rate=0.02\nmomentum=0.9\ndecay=0.0005\n"
    + LAYER.format(8, 2)
    + LAYER.format(16, 2)
    + LAYER.format(16, 2)
    + LAYER.format(16, 1)
    + "[convolutional]\nfilters=21\nsize=1\nactivation=linear\n"
    + "[yolo]\nmask=0,1,2\nanchors=8,8, 14,14, 22,22\nnum=3\nclasses=2\n"
)


def _scene(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A noisy image with a red box (class 0) and a blue one (class 1), and its label rows."""
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(3, SIZE, SIZE, generator=g) * 0.3
    rows = []
    for c in range(2):
        w, h = (int(v) for v in torch.randint(8, 20, (2,), generator=g))
        x0, y0 = (int(v) for v in torch.randint(0, SIZE - 20, (2,), generator=g))
        x0 = (x0 + 24 * c) % (SIZE - w)
        image[:, y0 : y0 + h, x0 : x0 + w] = 0.1
        image[2 * c, y0 : y0 + h, x0 : x0 + w] = 0.9
        rows.append([c, (x0 + w / 2) / SIZE, (y0 + h / 2) / SIZE, w / SIZE, h / SIZE])
    return image, torch.tensor(rows)


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    """IoU of two x1, y1, x2, y2 boxes."""
    w = (torch.minimum(a[2], b[2]) - torch.maximum(a[0], b[0])).clamp(min=0)
    h = (torch.minimum(a[3], b[3]) - torch.maximum(a[1], b[1])).clamp(min=0)
    inter = w * h
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


def _corners(rows: torch.Tensor) -> torch.Tensor:
    """`class x y w h` fractions → x1, y1, x2, y2 pixels."""
    x, y, w, h = (rows[:, 1:] * SIZE).unbind(1)
    return torch.stack((x - w / 2, y - h / 2, x + w / 2, y + h / 2), dim=1)


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    model = netcfg.build(CFG).train()
    images, targets = collate([_scene(seed) for seed in range(4)])
    loss = DarknetLoss(model)
    optimizer = darknet_sgd(model)
    scheduler = darknet_scheduler(optimizer, model.spec.net)
    first = None
    for _ in range(150):
        cost = loss(model(images), targets)
        (cost / model.spec.net.batch).backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        first = float(cost.detach()) if first is None else first
    loss.remove()
    assert float(cost.detach()) < first / 100
    return model.eval(), images, targets


def test_the_decoded_output_finds_every_box(trained):
    model, images, targets = trained
    with torch.no_grad():
        (rows,) = model(images)
    for b in range(len(images)):
        score, cls = (rows[b, :, 4:5] * rows[b, :, 5:]).max(dim=1)
        keep = score > 0.5
        found = torch.stack((rows[b, keep, 0], rows[b, keep, 1], rows[b, keep, 2], rows[b, keep, 3]), dim=1)
        boxes = torch.cat((found[:, :2] - found[:, 2:] / 2, found[:, :2] + found[:, 2:] / 2), dim=1)
        for truth, corners in zip(targets[b], _corners(targets[b])):
            assert any(_iou(box, corners) > 0.5 and c == truth[0] for box, c in zip(boxes, cls[keep])), (b, truth)


def test_netcfg_detect_finds_every_box_and_nothing_else(trained):
    model, images, targets = trained
    found = netcfg.detect(model, list(images), thresh=0.5)
    for b, detections in enumerate(found):
        assert len(detections) == len(targets[b])
        for truth, corners in zip(targets[b], _corners(targets[b])):
            assert any(_iou(torch.tensor(d.box), corners) > 0.5 and d.class_id == int(truth[0]) for d in detections), (
                b,
                truth,
                detections,
            )
