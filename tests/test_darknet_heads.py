"""[yolo], [region] and [Gaussian_yolo] decoding (eval-mode `model(x)`, i.e. each head's `decode` of its
output) against per-cell loops transcribed from darknet (forward_*_layer activations, then get_*_box /
get_*_detections), boxes scaled to pixels of the input given: darknet after resize_network to it."""

import math

import pytest
import torch
from darknet_ref import assert_close, flat, logistic, softmax

import netcfg

NET_W, NET_H = 96, 64
H, W = 4, 6
STRIDE = 16


def head_input(channels: int, scale: float = 1.5, h: int = H, w: int = W) -> torch.Tensor:
    return torch.randn(2, channels, h, w, generator=torch.Generator().manual_seed(channels)) * scale


def run_head(section: str, x: torch.Tensor, train: bool = False) -> torch.Tensor:
    """Runs `section` on the grid `x` inside a NET_W×NET_H network fed a (16·h)×(16·w) image: a 1×1
    max pool with stride 16 hands the head the image's every 16th pixel, where `x` is placed."""
    b, c, h, w = x.shape
    model = netcfg.build(f"[net]\nwidth={NET_W}\nheight={NET_H}\nchannels={c}\n[maxpool]\nsize=1\nstride=16\n{section}")
    model.train(train)
    image = torch.zeros(b, c, STRIDE * h, STRIDE * w)
    image[:, :, ::STRIDE, ::STRIDE] = x
    with torch.no_grad():
        (out,) = model(image)
    return out


def yolo_reference(x, biases, mask, classes, scale_x_y, new_coords, h=H, w=W):
    """forward_yolo_layer on one image's h×w grid, then get_yolo_box per cell in get_yolo_detections order
    with netw×neth the input's size (STRIDE·w × STRIDE·h); rows in netcfg's order (anchor, row, column)."""
    net_w, net_h = STRIDE * w, STRIDE * h  # darknet's net.w, net.h after resize_network
    out = list(x)
    wh, entries = w * h, 5 + classes
    for n in range(len(mask)):
        base = n * wh * entries
        if not new_coords:
            for i in range(base, base + 2 * wh):
                out[i] = logistic(out[i])
            for i in range(base + 4 * wh, base + entries * wh):
                out[i] = logistic(out[i])
        for i in range(base, base + 2 * wh):
            out[i] = out[i] * scale_x_y + -0.5 * (scale_x_y - 1)
    rows = {}
    for i in range(wh):
        row, col = i // w, i % w
        for n in range(len(mask)):
            index = n * wh * entries + i
            s = wh
            bx = (col + out[index]) / w
            by = (row + out[index + s]) / h
            if new_coords:
                bw = out[index + 2 * s] * out[index + 2 * s] * 4 * biases[2 * mask[n]] / net_w
                bh = out[index + 3 * s] * out[index + 3 * s] * 4 * biases[2 * mask[n] + 1] / net_h
            else:
                bw = math.exp(out[index + 2 * s]) * biases[2 * mask[n]] / net_w
                bh = math.exp(out[index + 3 * s]) * biases[2 * mask[n] + 1] / net_h
            scores = [out[index + (4 + j) * s] for j in range(1 + classes)]
            rows[n * wh + i] = [bx * net_w, by * net_h, bw * net_w, bh * net_h, *scores]
    return [v for k in sorted(rows) for v in rows[k]]


@pytest.mark.parametrize("scale_x_y, new_coords", [(1.0, 0), (1.2, 0), (2.0, 1), (1.05, 1)])
def test_yolo_decoding_matches_get_yolo_box(scale_x_y, new_coords):
    biases = [10, 13, 16, 30, 33, 23, 30, 61]
    mask, classes = [3, 1], 2
    section = (
        f"[yolo]\nmask=3,1\nanchors={','.join(map(str, biases))}\nnum=4\nclasses={classes}\n"
        f"scale_x_y={scale_x_y}\nnew_coords={new_coords}\n"
    )
    x = head_input(14)
    out = run_head(section, x)
    want = yolo_reference(flat(x[0]), biases, mask, classes, scale_x_y, new_coords)
    want += yolo_reference(flat(x[1]), biases, mask, classes, scale_x_y, new_coords)
    assert tuple(out.shape) == (2, 2 * H * W, 5 + classes)
    assert_close(out, want, rtol=1e-5, atol=1e-4)


def test_yolo_train_mode_returns_the_layer_output_undecoded():
    x = head_input(14)
    out = run_head("[yolo]\nmask=0,1\nanchors=1,2,3,4\nnum=2\nclasses=2\nnew_coords=1\n", x, train=True)
    assert torch.equal(out, x)  # new_coords, scale_x_y=1: darknet's l.output is its input


def region_reference(x, biases, num, classes, use_softmax, h=H, w=W):
    """forward_region_layer on one image's h×w grid (flatten to location-major, logistic objectness, softmax
    classes), then get_region_box per cell as get_region_boxes does, boxes times the input's size;
    rows in netcfg's order."""
    net_w, net_h = STRIDE * w, STRIDE * h  # the image size get_region_boxes scales by
    wh, size = w * h, classes + 5
    layers = size * num
    out = [0.0] * len(x)
    for c in range(layers):  # flatten(l.output, l.w*l.h, size*l.n, l.batch, 1)
        for i in range(wh):
            out[i * layers + c] = x[c * wh + i]
    for i in range(wh * num):
        index = size * i
        out[index + 4] = logistic(out[index + 4])
        if use_softmax:
            out[index + 5 : index + 5 + classes] = softmax(out[index + 5 : index + 5 + classes])
    rows = {}
    for i in range(wh):
        row, col = i // w, i % w
        for n in range(num):
            index = i * num + n
            box = index * (classes + 5)
            bx = (col + logistic(out[box + 0])) / w
            by = (row + logistic(out[box + 1])) / h
            bw = math.exp(out[box + 2]) * biases[2 * n] / w
            bh = math.exp(out[box + 3]) * biases[2 * n + 1] / h
            scores = out[box + 4 : box + 5 + classes]
            rows[n * wh + i] = [bx * net_w, by * net_h, bw * net_w, bh * net_h, *scores]
    return [v for k in sorted(rows) for v in rows[k]]


@pytest.mark.parametrize("use_softmax, extra", [(1, ""), (0, ""), (1, "tree=data/9k.tree\n")])
def test_region_decoding_matches_get_region_boxes(use_softmax, extra):
    biases = [1.08, 1.19, 3.42, 4.41, 6.63, 11.38]
    section = f"[region]\nanchors={','.join(map(str, biases))}\nclasses=3\nnum=3\nsoftmax={use_softmax}\n{extra}"
    x = head_input(24)
    out = run_head(section, x)
    apply_softmax = use_softmax and not extra  # with a tree, the class scores stay raw
    want = region_reference(flat(x[0]), biases, 3, 3, apply_softmax)
    want += region_reference(flat(x[1]), biases, 3, 3, apply_softmax)
    assert tuple(out.shape) == (2, 3 * H * W, 8)
    assert_close(out, want, rtol=1e-5, atol=1e-4)


def gaussian_reference(x, biases, mask, classes, scale_x_y, yolo_point, h=H, w=W):
    """forward_gaussian_yolo_layer on one image's h×w grid, then get_gaussian_yolo_box per cell with netw×neth
    the input's size; rows are x, y, w, h (pixels), uc[0..3], objectness, classes in netcfg's order."""
    net_w, net_h = STRIDE * w, STRIDE * h  # darknet's net.w, net.h after resize_network
    wh, entries = w * h, 9 + classes
    out = list(x)

    def entry(n, loc, e):
        return n * wh * entries + e * wh + loc

    for n in range(len(mask)):
        for start, count in ((0, 2 * wh), (2 * wh, 2 * wh), (5 * wh, wh), (7 * wh, wh), (8 * wh, (1 + classes) * wh)):
            for i in range(count):
                out[entry(n, 0, 0) + start + i] = logistic(out[entry(n, 0, 0) + start + i])
        for e in (0, 2):
            for i in range(wh):
                k = entry(n, i, e)
                out[k] = out[k] * scale_x_y + -0.5 * (scale_x_y - 1)
    rows = {}
    for i in range(wh):
        row, col = i // w, i % w
        for n in range(len(mask)):
            index, s = entry(n, i, 0), wh
            bw = math.exp(out[index + 4 * s]) * biases[2 * mask[n]] / net_w
            bh = math.exp(out[index + 6 * s]) * biases[2 * mask[n] + 1] / net_h
            bx = (col + out[index]) / w
            by = (row + out[index + 2 * s]) / h
            if yolo_point == "left_top":
                bx, by = bx + bw / 2, by + bh / 2
            elif yolo_point == "right_bottom":
                bx, by = bx - bw / 2, by - bh / 2
            uc = [out[entry(n, i, e)] for e in (1, 3, 5, 7)]
            scores = [out[entry(n, i, 8 + j)] for j in range(1 + classes)]
            rows[n * wh + i] = [bx * net_w, by * net_h, bw * net_w, bh * net_h, *uc, *scores]
    return [v for k in sorted(rows) for v in rows[k]]


@pytest.mark.parametrize("scale_x_y, yolo_point", [(1.0, "center"), (1.1, "left_top"), (1.2, "right_bottom")])
def test_gaussian_yolo_decoding_matches_get_gaussian_yolo_box(scale_x_y, yolo_point):
    biases = [10, 13, 16, 30, 33, 23]
    section = (
        f"[Gaussian_yolo]\nmask=2,0\nanchors={','.join(map(str, biases))}\nnum=3\nclasses=2\n"
        f"scale_x_y={scale_x_y}\nyolo_point={yolo_point}\nuc_normalizer=1.0\n"
    )
    x = head_input(22)
    out = run_head(section, x)
    want = gaussian_reference(flat(x[0]), biases, [2, 0], 2, scale_x_y, yolo_point)
    want += gaussian_reference(flat(x[1]), biases, [2, 0], 2, scale_x_y, yolo_point)
    assert tuple(out.shape) == (2, 2 * H * W, 11)
    assert_close(out, want, rtol=1e-5, atol=1e-4)


YOLO = "[yolo]\nmask=3,1\nanchors=10,13,16,30,33,23,30,61\nnum=4\nclasses=2\nscale_x_y=1.2\n"
REGION = "[region]\nanchors=1.08,1.19,3.42,4.41,6.63,11.38\nclasses=3\nnum=3\nsoftmax=1\n"
GAUSSIAN = "[Gaussian_yolo]\nmask=2,0\nanchors=10,13,16,30,33,23\nnum=3\nclasses=2\nyolo_point=left_top\n"


@pytest.mark.parametrize(
    "section, channels, reference",
    [
        (YOLO, 14, lambda x, h, w: yolo_reference(x, [10, 13, 16, 30, 33, 23, 30, 61], [3, 1], 2, 1.2, 0, h, w)),
        (REGION, 24, lambda x, h, w: region_reference(x, [1.08, 1.19, 3.42, 4.41, 6.63, 11.38], 3, 3, 1, h, w)),
        (GAUSSIAN, 22, lambda x, h, w: gaussian_reference(x, [10, 13, 16, 30, 33, 23], [2, 0], 2, 1, "left_top", h, w)),
    ],
    ids=["yolo", "region", "Gaussian_yolo"],
)
def test_an_input_other_than_the_nets_size_decodes_in_the_inputs_pixels(section, channels, reference):
    h, w = 8, 5  # a 128×80 (H×W) input on a 64×96 [net]
    x = head_input(channels, h=h, w=w)
    out = run_head(section, x)
    assert_close(out, reference(flat(x[0]), h, w) + reference(flat(x[1]), h, w), rtol=1e-5, atol=1e-4)


def test_a_smaller_input_keeps_its_boxes_on_the_image():
    model = netcfg.build("yolov3-tiny").eval()  # [net] 416×416
    with torch.no_grad():
        small, large = model(torch.rand(1, 3, 224, 224))
    centres = torch.cat((small, large), dim=1)[..., :2]
    assert centres.min() >= 0 and centres.max() <= 224


def test_missing_anchors_default_to_half_and_extra_ones_are_ignored():
    short = netcfg.parse("[net]\nwidth=8\nheight=8\n[conv]\nfilters=14\n[yolo]\nnum=2\nclasses=2\nanchors=3,4,5\n")
    assert short.layers[1].section.selected_anchors() == ((3.0, 4.0), (5.0, 0.5))
    extra = netcfg.parse("[net]\nwidth=8\nheight=8\n[conv]\nfilters=7\n[yolo]\nnum=1\nclasses=2\nanchors=3,4,5,6\n")
    assert extra.layers[1].section.selected_anchors() == ((3.0, 4.0),)


def test_heads_are_network_outputs():
    model = netcfg.build(
        "[net]\nwidth=32\nheight=32\nchannels=3\n"
        "[conv]\nfilters=14\nsize=1\n[yolo]\nmask=0,1\nanchors=1,2,3,4\nnum=2\nclasses=2\n"
        "[route]\nlayers=0\n[conv]\nfilters=16\nsize=1\n[region]\nnum=2\nclasses=3\nanchors=1,1,2,2\n"
    )
    outs = model(torch.randn(1, 3, 32, 32))
    assert [tuple(o.shape) for o in outs] == [(1, 2 * 32 * 32, 7), (1, 2 * 32 * 32, 8)]
