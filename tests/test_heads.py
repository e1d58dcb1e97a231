"""What a detection head hands on: darknet's `l.output` (the input's shape, activated in place as the
CPU forward_*_layer does) in train and eval mode, to later layers and `return_layers`; decoding
(`decode`) is a separate step. Also: tracing at one size runs at another, scripting, meta-device builds."""

import warnings

import pytest
import torch
from darknet_ref import assert_close, flat, logistic, softmax
from torch import nn

import netcfg

H, W = 4, 6
YOLO = "[yolo]\nmask=2,0\nanchors=10,13, 16,30, 33,23\nnum=3\nclasses=2\nscale_x_y={scale}\nnew_coords={new}\n"
REGION = "[region]\nanchors=1.08,1.19, 3.42,4.41\nclasses=3\nnum=2\nsoftmax={softmax}\n"
GAUSSIAN = "[Gaussian_yolo]\nmask=0,1\nanchors=10,13, 16,30\nnum=2\nclasses=2\nscale_x_y={scale}\n"


def activate(out: list[float], start: int, count: int) -> None:
    """activate_array(out + start, count, LOGISTIC)."""
    for i in range(start, start + count):
        out[i] = logistic(out[i])


def scal_add(out: list[float], start: int, count: int, alpha: float, beta: float) -> None:
    """scal_add_cpu(count, alpha, beta, out + start, 1)."""
    for i in range(start, start + count):
        out[i] = out[i] * alpha + beta


def forward_yolo(x, n, classes, scale_x_y, new_coords, wh=W * H):
    """forward_yolo_layer's inference part on one image of `wh` cells (entry_index with 4 + classes + 1
    entries)."""
    out = list(x)
    for a in range(n):
        bbox = a * wh * (4 + classes + 1)
        if not new_coords:
            activate(out, bbox, 2 * wh)
            activate(out, bbox + 4 * wh, (1 + classes) * wh)
        scal_add(out, bbox, 2 * wh, scale_x_y, -0.5 * (scale_x_y - 1))
    return out


def forward_region(x, n, classes, use_softmax):
    """forward_region_layer's CPU inference part on one image: flatten, logistic objectness, softmax."""
    wh, size = W * H, 4 + classes + 1
    layers = size * n
    out = [0.0] * len(x)
    for c in range(layers):
        for i in range(wh):
            out[i * layers + c] = x[c * wh + i]
    for i in range(wh * n):
        out[size * i + 4] = logistic(out[size * i + 4])
        if use_softmax:
            out[size * i + 5 : size * i + 5 + classes] = softmax(out[size * i + 5 : size * i + 5 + classes])
    return out


def forward_gaussian(x, n, classes, scale_x_y):
    """forward_gaussian_yolo_layer's inference part on one image (8 + classes + 1 entries)."""
    out, wh = list(x), W * H
    beta = -0.5 * (scale_x_y - 1)
    for a in range(n):
        base = a * wh * (8 + classes + 1)
        activate(out, base, 2 * wh)
        scal_add(out, base, wh, scale_x_y, beta)
        activate(out, base + 2 * wh, 2 * wh)
        scal_add(out, base + 2 * wh, wh, scale_x_y, beta)
        activate(out, base + 5 * wh, wh)
        activate(out, base + 7 * wh, wh)
        activate(out, base + 8 * wh, (1 + classes) * wh)
    return out


CASES = {
    "yolo": (YOLO.format(scale=1.0, new=0), 14, lambda x: forward_yolo(x, 2, 2, 1.0, 0)),
    "yolo-scaled": (YOLO.format(scale=1.2, new=0), 14, lambda x: forward_yolo(x, 2, 2, 1.2, 0)),
    "yolo-new-coords": (YOLO.format(scale=2.0, new=1), 14, lambda x: forward_yolo(x, 2, 2, 2.0, 1)),
    "region-softmax": (REGION.format(softmax=1), 16, lambda x: forward_region(x, 2, 3, True)),
    "region": (REGION.format(softmax=0), 16, lambda x: forward_region(x, 2, 3, False)),
    "gaussian": (GAUSSIAN.format(scale=1.1), 22, lambda x: forward_gaussian(x, 2, 2, 1.1)),
}


def head_model(section: str, channels: int) -> netcfg.Network:
    """The head alone, reading the W×H network input."""
    return netcfg.build(f"[net]\nwidth={W}\nheight={H}\nchannels={channels}\n{section}")


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("case", CASES)
def test_layer_output_is_darknets_l_output(case, train):
    section, channels, reference = CASES[case]
    model = head_model(section, channels).train(train)
    x = torch.randn(2, channels, H, W, generator=torch.Generator().manual_seed(3)) * 2
    with torch.no_grad():
        out = model(x, return_layers=[0])[0]
    assert tuple(out.shape) == (2, channels, H, W)
    assert_close(out, reference(flat(x[0])) + reference(flat(x[1])), rtol=1e-6, atol=1e-6)


READERS = (
    "[net]\nwidth=32\nheight=32\nchannels=3\n"
    "[convolutional]\nfilters=14\nsize=1\nactivation=linear\n"
    + YOLO.format(scale=1.1, new=0)
    + "[route]\nlayers=-1\n"  # 2: reads the [yolo]
    + "[convolutional]\nfilters=16\nsize=3\npad=1\nactivation=leaky\n"  # 3: a conv after a head
    + "[convolutional]\nfilters=16\nsize=1\nactivation=linear\n"
    + REGION.format(softmax=1)
    + "[convolutional]\nfilters=6\nsize=1\nactivation=linear\n"  # 6: a conv after a head
)


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_layers_reading_a_head_get_its_output_in_the_spec_shapes(train):
    model = netcfg.build(READERS).train(train)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        outs = model(x, return_layers=range(len(model.layers)))
        boxes = model(x)
    assert [tuple(o.shape[1:]) for o in outs.values()] == [layer.shape for layer in model.spec.layers]
    assert torch.equal(outs[2], outs[1])
    want = [forward_yolo(flat(image), 2, 2, 1.1, 0, wh=32 * 32) for image in outs[0]]
    assert_close(outs[2], want[0] + want[1], rtol=1e-6, atol=1e-6)
    assert torch.equal(outs[6], model.layers[6](outs[5]))
    shapes = [(2, 2 * 32 * 32, 7), (2, 2 * 32 * 32, 8)] if not train else [(2, 14, 32, 32), (2, 16, 32, 32)]
    assert [tuple(b.shape) for b in boxes] == shapes


def test_network_decode_turns_train_mode_outputs_into_eval_mode_boxes():
    model = netcfg.build(READERS)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        outputs = model.train()(x)
        boxes = model.eval()(x)
    decoded = model.decode(outputs, x)
    assert all(torch.equal(a, b) for a, b in zip(decoded, boxes, strict=True))


ALL_HEADS = (
    "[net]\nwidth=64\nheight=64\nchannels=3\n"
    "[convolutional]\nfilters=8\nsize=3\nstride=2\npad=1\nbatch_normalize=1\nactivation=leaky\n"
    "[convolutional]\nfilters=14\nsize=1\nactivation=linear\n"
    + YOLO.format(scale=1.2, new=0)
    + "[route]\nlayers=0\n"
    + "[convolutional]\nfilters=16\nsize=1\nstride=2\nactivation=linear\n"
    + REGION.format(softmax=1)
    + "[route]\nlayers=0\n"
    + "[convolutional]\nfilters=22\nsize=1\nactivation=linear\n"
    + GAUSSIAN.format(scale=1.1).replace("classes=2\n", "classes=2\nyolo_point=right_bottom\n")
    + "[route]\nlayers=0\n"
    + "[convolutional]\nfilters=14\nsize=1\nactivation=logistic\n"
    + YOLO.format(scale=2.0, new=1)
)


def eval_model(cfg: str) -> netcfg.Network:
    torch.manual_seed(0)
    model = netcfg.build(cfg).eval()
    for p in model.parameters():
        p.data.mul_(0.5)
    return model


class Boxes(nn.Module):
    """The network's eval-mode outputs as a tuple (the tracer's preferred output container)."""

    def __init__(self, model: netcfg.Network):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model(x))


def test_a_trace_at_one_size_decodes_at_another_as_eager():
    model = eval_model(ALL_HEADS)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("error", torch.jit.TracerWarning)
        traced = torch.jit.trace(Boxes(model), torch.rand(1, 3, 64, 64))
    x = torch.rand(2, 3, 96, 160)
    with torch.no_grad():
        want = model(x)
    with torch.no_grad():
        got = traced(x)
    assert [o.shape[1] for o in got] == [2 * 48 * 80, 2 * 24 * 40, 2 * 48 * 80, 2 * 48 * 80]
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


@pytest.mark.parametrize("index", [2, 5, 8, 11], ids=["yolo", "region", "Gaussian_yolo", "yolo-new-coords"])
def test_every_head_scripts_and_matches_eager(index):
    head = eval_model(ALL_HEADS).layers[index]
    scripted = torch.jit.script(head)
    for h, w in ((4, 6), (7, 3)):
        x = torch.randn(2, head.num * head.per_anchor, h, w)
        image = torch.empty(2, 3, 16 * h, 8 * w)
        assert torch.equal(scripted(x), head(x))
        assert torch.equal(scripted.decode(scripted(x), image), head.decode(head(x), image))


def test_a_meta_device_build_loads_into_the_same_network():
    model = eval_model(ALL_HEADS)
    with torch.device("meta"):
        meta = netcfg.build(ALL_HEADS)
    meta.to_empty(device="cpu")
    meta.load_state_dict(model.state_dict())
    meta.eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        want, got = model(x), meta(x)
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    heads = {f"layers.{i}." for i in model.spec.outputs}
    assert not [key for key in model.state_dict() if key.startswith(tuple(heads))]


# ---------------------------------------------------------------- anchors and masks past num

MASKED = (
    "[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nfilters=21\nsize=1\nactivation=linear\n"
    "[yolo]\nmask={mask}\nanchors={anchors}\nnum={num}\nclasses=2\n"
)


def _parse_warnings(cfg: str) -> tuple[netcfg.Spec, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", netcfg.CfgWarning)
        spec = netcfg.parse(cfg)
    return spec, [str(w.message) for w in caught if issubclass(w.category, netcfg.CfgWarning)]


def test_a_mask_past_num_uses_the_listed_pairs_with_a_located_warning():
    """cspx-p7-mish.cfg: `mask=16,17,18,19` with `num=16` and 20 pairs listed; darknet reads past its array."""
    cfg = MASKED.format(mask="3,4,5", anchors="1,2, 3,4, 5,6, 7,8, 9,10, 11,12", num=3)
    spec, got = _parse_warnings(cfg)
    assert got == [
        "<cfg>:10:1: [yolo #1] mask: mask [3, 4, 5] reads past the num=3 anchors; using the pairs anchors= lists"
    ]
    assert spec.layers[1].section.selected_anchors() == ((7.0, 8.0), (9.0, 10.0), (11.0, 12.0))


def test_a_mask_index_with_no_listed_pair_is_refused():
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.parse(MASKED.format(mask="3,4,6", anchors="1,2, 3,4, 5,6, 7,8, 9,10, 11,12", num=3))
    (item,) = exc.value.items
    assert (item.line, item.key) == (10, "mask") and "mask index 6 has no anchor" in item.message


def test_missing_anchors_are_half_with_a_located_warning():
    spec, got = _parse_warnings(MASKED.format(mask="0,1,2", anchors="4,5, 8,9", num=3))
    assert got == ["<cfg>:11:1: [yolo #1] anchors: 4 values for num=3 pairs: missing ones are 0.5, as in darknet"]
    assert spec.layers[1].section.selected_anchors() == ((4.0, 5.0), (8.0, 9.0), (0.5, 0.5))
