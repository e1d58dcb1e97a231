"""[local], [detection], [implicit], [contrastive] against transcriptions of darknet's forward
functions, their .weights layout, and the YOLOv1 / contrastive cfgs that use them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from darknet_ref import assert_close, build, flat, output, softmax

import netcfg

HEADER = np.array([0, 2, 5], "<i4").tobytes() + b"\0" * 8


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def leaky(v: float) -> float:
    return v if v > 0 else 0.1 * v


def im2col(x, c, h, w, size, stride, pad):
    """im2col_cpu: rows (channel, ky, kx), columns the output positions, zero outside the image."""
    oh, ow = (h + 2 * pad - size) // stride + 1, (w + 2 * pad - size) // stride + 1
    col = []
    for row in range(c * size * size):
        kx, ky, ch = row % size, (row // size) % size, row // size // size
        for i in range(oh):
            for j in range(ow):
                r, q = ky + i * stride - pad, kx + j * stride - pad
                col.append(x[q + w * (r + h * ch)] if 0 <= r < h and 0 <= q < w else 0.0)
    return col, oh, ow


def local_reference(x, c, h, w, weights, biases, n, size, stride, pad):
    """forward_local_layer: biases copied, then for each location j a gemm of its n×k weights
    (at weights + j·k·n) with column j of the im2col matrix, then the activation."""
    col, oh, ow = im2col(x, c, h, w, size, stride, pad)
    locations, k = oh * ow, c * size * size
    out = list(biases)
    for j in range(locations):
        for f in range(n):
            out[f * locations + j] += sum(weights[j * k * n + f * k + kk] * col[kk * locations + j] for kk in range(k))
    return [leaky(v) for v in out], oh, ow


# ---------------------------------------------------------------- [local]


@pytest.mark.parametrize("size, stride, pad", [(3, 1, 1), (3, 2, 1), (2, 1, 0), (3, 2, 0), (1, 1, 0)])
def test_local_matches_darknet(size, stride, pad):
    model = build(f"[local]\nfilters=3\nsize={size}\nstride={stride}\npad={pad}\nactivation=leaky\n", c=2, h=5, w=4)
    layer = model.layers[0]
    torch.nn.init.normal_(layer.bias)
    x = randn(1, 2, 5, 4)
    want, oh, ow = local_reference(flat(x), 2, 5, 4, flat(layer.weight), flat(layer.bias), 3, size, stride, pad)
    out = output(model, x)
    assert tuple(out.shape[1:]) == model.spec.layers[0].shape == (3, oh, ow)
    assert_close(out, want)


def test_local_sizes_darknet_misreads_are_refused():
    with pytest.raises(netcfg.CfgError, match="im2col fills"):
        build("[local]\nfilters=2\nsize=5\npad=1\n")


def test_local_weights_are_biases_then_weights_by_location(tmp_path):
    model = build("[local]\nfilters=2\nsize=1\n", c=3, h=1, w=2)
    data = np.arange(2 * 2 + 2 * 2 * 3, dtype=np.float32) + 1  # outputs biases, then locations·n·k weights
    (tmp_path / "w.weights").write_bytes(HEADER + data.tobytes())
    netcfg.load_darknet_weights(model, tmp_path / "w.weights")
    layer = model.layers[0]
    assert flat(layer.bias) == [1, 2, 3, 4]  # bias[f][y][x]: filter-major, like darknet's output
    assert flat(layer.weight[1, 0]) == [11, 12, 13]  # location 1, filter 0, its c·size² weights
    x = torch.tensor([[[[1.0, 0.0]], [[0.0, 0.0]], [[0.0, 1.0]]]])
    # out[f, j] = logistic(bias[f, j] + Σk w[j, f, k]·x[k, j]): location 1 sees channel 2 only
    assert_close(output(model, x)[0, :, 0, 1], [1 / (1 + np.exp(-(2 + 13))), 1 / (1 + np.exp(-(4 + 16)))])


# ---------------------------------------------------------------- [detection]


def test_detection_softmaxes_each_cells_classes_only():
    model = build("[detection]\nclasses=3\ncoords=4\nnum=2\nside=2\nsoftmax=1\n", c=52, h=1, w=1)
    x = randn(1, 52, 1, 1)
    values = flat(x)
    want = list(values)
    for i in range(4):  # forward_detection_layer: softmax(output + i·classes, classes)
        want[i * 3 : i * 3 + 3] = softmax(values[i * 3 : i * 3 + 3])
    out = model(x, return_layers=[0])[0]
    assert_close(out, want)


def get_detection_detections(values: list[float], side: int, n: int, classes: int, sqrt: bool, w: int, h: int):
    """darknet's get_detection_detections (detection_layer.c) without the threshold: per cell and box,
    [x, y, w, h, scale] + the cell's class scores, boxes in pixels of a w×h image."""
    rows = []
    for i in range(side * side):
        row, col = i // side, i % side
        for k in range(n):
            p_index = side * side * classes + i * n + k
            box_index = side * side * (classes + n) + (i * n + k) * 4
            bx = (values[box_index + 0] + col) / side * w
            by = (values[box_index + 1] + row) / side * h
            bw = values[box_index + 2] ** (2 if sqrt else 1) * w
            bh = values[box_index + 3] ** (2 if sqrt else 1) * h
            rows.append([bx, by, bw, bh, values[p_index], *values[i * classes : i * classes + classes]])
    return rows


@pytest.mark.parametrize("sqrt", [0, 1])
def test_detection_decodes_as_get_detection_detections(sqrt):
    model = build(f"[detection]\nclasses=3\ncoords=4\nnum=2\nside=2\nsoftmax=1\nsqrt={sqrt}\n", c=52, h=1, w=1)
    x = randn(1, 52, 1, 1)
    image = torch.zeros(1, 3, 40, 60)
    values = flat(model(x, return_layers=[0])[0])
    got = model.layers[0].decode(model(x, return_layers=[0])[0], image)
    assert got.shape == (1, 8, 8)
    assert_close(got.flatten(), [v for r in get_detection_detections(values, 2, 2, 3, bool(sqrt), 60, 40) for v in r])


def test_detection_needs_four_coords():
    with pytest.raises(netcfg.CfgError, match="coords=1: darknet's detection boxes"):
        build("[detection]\nclasses=2\ncoords=1\nnum=1\nside=2\n", c=12, h=1, w=1)


def test_detection_without_coords_is_refused_not_decoded_as_four():
    """darknet's default coords=1 fits a smaller input, which decode (4 per box) would overrun."""
    with pytest.raises(netcfg.CfgError, match="coords=1: darknet's detection boxes"):
        build("[detection]\nclasses=0\nnum=1\nside=2\n", c=8, h=1, w=1)


def test_detection_without_softmax_passes_the_input_and_checks_its_size():
    model = build("[detection]\nclasses=2\ncoords=4\nnum=1\nside=2\n", c=7, h=2, w=2)
    x = randn(2, 7, 2, 2)
    assert torch.equal(model(x, return_layers=[0])[0], x)
    with pytest.raises(netcfg.CfgError, match=r"side²·\(\(1\+coords\)·num \+ classes\)"):
        build("[detection]\nclasses=2\ncoords=4\nnum=2\nside=2\n", c=7, h=2, w=2)


# ---------------------------------------------------------------- [implicit], [contrastive]


def test_implicit_repeats_its_weights_for_the_batch_and_ignores_the_input(tmp_path):
    model = build("[implicit]\nfilters=3\natoms=2\n", c=4, h=2, w=2)
    data = np.arange(6, dtype=np.float32) + 1
    (tmp_path / "w.weights").write_bytes(HEADER + data.tobytes())
    netcfg.load_darknet_weights(model, tmp_path / "w.weights")
    out = output(model, randn(2, 4, 2, 2))
    assert out.shape == (2, 3, 2, 1) == (2, *model.spec.layers[0].shape)
    assert flat(out) == [data[i % 6] for i in range(12)]  # output[i] = weights[i % nweights]
    assert torch.equal(output(model, torch.zeros(2, 4, 2, 2)), out)


def test_implicit_initialises_within_mean_plus_minus_std():
    weight = build("[implicit]\nfilters=64\nmean=1\nstd=0.1\n").layers[0].weight
    assert weight.min() >= 0.9 and weight.max() <= 1.1


def test_contrastive_passes_through_and_is_not_the_output():
    model = build("[convolutional]\nfilters=4\nsize=1\nactivation=linear\n[contrastive]\nclasses=2\nyolo_layer=-1\n")
    x = randn(1, 4, 8, 8)
    outs = model(x, return_layers=[0, 1])
    assert torch.equal(outs[1], outs[0]) and torch.equal(model(x), outs[0])


# ---------------------------------------------------------------- weights and real cfgs


def test_yolov1_layers_round_trip_through_a_weights_file(tmp_path):
    cfg = (
        "[local]\nfilters=2\nsize=3\npad=1\nactivation=leaky\n[connected]\noutput=28\n"
        "[detection]\nclasses=2\ncoords=4\nside=2\n[implicit]\nfilters=3\n"
    )
    model = build(cfg, c=2, h=4, w=4)
    netcfg.save_darknet_weights(model, tmp_path / "a.weights")
    assert (tmp_path / "a.weights").stat().st_size == 20 + 4 * ((2 * 16 + 16 * 2 * 18) + (28 + 28 * 32) + 3)
    other = build(cfg, c=2, h=4, w=4)
    assert netcfg.load_darknet_weights(other, tmp_path / "a.weights") == 4
    x = randn(1, 2, 4, 4)
    for a, b in zip(other(x, return_layers=[2, 3]).values(), model(x, return_layers=[2, 3]).values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize(
    "name", ["yolov1/yolo.cfg", "yolov1/tiny-yolo.cfg", "yolov1/yolo2.cfg", "yolov1/tiny-coco.cfg"]
)
def test_yolov1_cfgs_build_and_run(name, shared_cfgs):
    model = netcfg.build(shared_cfgs / name, width=64, height=64)
    with torch.no_grad():
        (boxes,) = model(torch.rand(1, 3, 64, 64))
    detection = model.spec.layers[-1].section
    assert detection.type_name == "detection"
    assert boxes.shape == (1, detection.side**2 * detection.num, 5 + detection.classes)


def test_contrastive_cfg_returns_its_yolo_outputs(shared_cfgs):
    model = netcfg.build(shared_cfgs / "yolov4-tiny_contrastive.cfg", width=64, height=64)
    assert model.spec.outputs == tuple(
        i for i, layer in enumerate(model.spec.layers) if layer.section.type_name == "yolo"
    )
    with torch.no_grad():
        assert len(model(torch.rand(1, 3, 64, 64))) == len(model.spec.outputs)
