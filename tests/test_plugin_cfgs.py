"""The bundled `yolov3-spp-rfb.cfg` and `yolov3-asff.cfg`: they follow darknet's YOLOv3(-SPP) layer
sequence, build, run, and have the parameter counts computed here from their architecture."""

import pytest
import torch
from blockcheck import DARKNET_SPP

import netcfg
from netcfg.files import read_cfg

YOLOV3_SPP_PARAMS = 62_998_749
YOLOV3_PARAMS = 61_949_149
HEAD_SHAPES_416 = [(255, 13, 13), (255, 26, 26), (255, 52, 52)]


def conv_bn(cin: int, cout: int, kh: int, kw: int | None = None) -> int:
    """Parameters of a bias-free conv followed by batch norm (γ and β)."""
    return cin * cout * kh * (kh if kw is None else kw) + 2 * cout


def rfb_params(cin: int, cout: int) -> int:
    """BasicRFB: inter = cin/8; branches 2i | i→2i→2i | i→(i/2)·3→2i→2i; linear 1×1; shortcut 1×1."""
    i = cin // 8
    mid = i // 2 * 3
    branch0 = conv_bn(cin, 2 * i, 1) + conv_bn(2 * i, 2 * i, 3)
    branch1 = conv_bn(cin, i, 1) + conv_bn(i, 2 * i, 3) + conv_bn(2 * i, 2 * i, 3)
    branch2 = conv_bn(cin, i, 1) + conv_bn(i, mid, 3) + conv_bn(mid, 2 * i, 3) + conv_bn(2 * i, 2 * i, 3)
    return branch0 + branch1 + branch2 + conv_bn(6 * i, cout, 1) + conv_bn(cin, cout, 1)


def asff_params(channels: tuple[int, int, int], level: int, filters: int, compress: int = 16) -> int:
    """ASFF: 1×1 convs from coarser and 3×3 convs from finer levels to the level's channels, three
    1×1 weight convs, a 3·compress→3 conv with bias, a 3×3 expand conv."""
    inter = channels[level]
    resize = sum(conv_bn(c, inter, 1 if n < level else 3) for n, c in enumerate(channels) if n != level)
    weights = 3 * conv_bn(inter, compress, 1) + (3 * compress * 3 + 3)
    return resize + weights + conv_bn(inter, filters, 3)


def darknet_params(spec: netcfg.Spec) -> int:
    """Parameters of a darknet-only network from its spec: only `[convolutional]` layers have any."""
    total = 0
    for layer in spec.layers:
        s = layer.section
        if s.type_name == "convolutional":
            cin = layer.input_shapes[0][0]
            total += cin * s.filters * s.size * s.size // max(s.groups, 1)
            total += 2 * s.filters if s.batch_normalize else s.filters
    return total


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def sections(text: str) -> list[tuple[str, dict]]:
    spec = netcfg.parse(text, width=416, height=416)
    return [(layer.section.type_name, layer.section.model_dump()) for layer in spec.layers]


def bundled_text(name: str) -> str:
    content = read_cfg(name).content
    return content.decode() if isinstance(content, bytes) else content


def test_the_darknet_parameter_counts_used_below(shared_cfgs):
    assert darknet_params(netcfg.parse(shared_cfgs / "yolov3-spp.cfg")) == YOLOV3_SPP_PARAMS
    assert darknet_params(netcfg.parse(shared_cfgs / "yolov3.cfg")) == YOLOV3_PARAMS


def test_spp_rfb_is_yolov3_spp_plus_one_rfb(shared_cfgs):
    text = bundled_text("yolov3-spp-rfb.cfg")
    rfb = "[rfb]\nfilters=512\nstride=1\nscale=0.1\nvisual=1\n"
    assert text.count("\n[rfb]\n") == 1 and rfb in text
    expanded = text.replace(rfb, "").replace("[spp]\nsizes=5,9,13\n", DARKNET_SPP)
    assert sections(expanded) == sections((shared_cfgs / "yolov3-spp.cfg").read_text())


def test_asff_cfg_is_yolov3_with_asff_before_each_head(shared_cfgs):
    ours, darknet = sections(bundled_text("yolov3-asff.cfg")), sections((shared_cfgs / "yolov3.cfg").read_text())
    assert ours[:80] == darknet[:80]  # backbone and level-0 feature
    assert ours[80:88] == darknet[84:92]  # up to the level-1 feature
    assert ours[88:96] == darknet[96:104]  # up to the level-2 feature
    for asff, head in zip((96, 99, 102), (80, 92, 104)):
        assert ours[asff][0] == "asff"
        assert ours[asff + 1 : asff + 3] == darknet[head + 1 : head + 3]  # 1×1 conv to 255, [yolo]


@pytest.mark.parametrize(
    "name, params",
    [
        ("yolov3-spp-rfb.cfg", YOLOV3_SPP_PARAMS + rfb_params(512, 512)),
        (
            "yolov3-asff.cfg",
            YOLOV3_PARAMS
            - (conv_bn(512, 1024, 3) + conv_bn(256, 512, 3) + conv_bn(128, 256, 3))
            + sum(asff_params((512, 256, 128), level, f) for level, f in enumerate((1024, 512, 256))),
        ),
    ],
)
def test_bundled_cfg_builds_runs_and_counts(name, params):
    spec = netcfg.parse(name)
    assert (spec.net.width, spec.net.height) == (416, 416)
    assert [spec.layers[i].shape for i in spec.outputs] == HEAD_SHAPES_416
    model = netcfg.build(name, width=128, height=128)
    assert count(model) == params
    with torch.no_grad():
        outputs = model(torch.rand(1, 3, 128, 128))
    assert [tuple(o.shape) for o in outputs] == [(1, 3 * n * n, 85) for n in (4, 8, 16)]
    assert all(torch.isfinite(o).all() for o in outputs)
