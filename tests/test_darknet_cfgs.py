"""Every real darknet cfg under ../shared/darknet-cfg: refused sections are named, the resnets are
refused at their impossible [shortcut] (darknet asserts there too), everything else parses,
builds and runs forward at a small size.

To keep this fast the networks are built on the meta device and then given zeroed storage: the
point here is that every module builds from the spec and produces the shapes shape inference
promised; the numbers are checked layer by layer in the other test files.
"""

import re
from pathlib import Path

import pytest
import torch

import netcfg

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "darknet-cfg"
CFGS = sorted(str(p.relative_to(SHARED)) for p in SHARED.rglob("*.cfg")) if SHARED.is_dir() else []

REFUSED = {"deconvolutional"}
#: Input sizes for cfgs whose strides need more than 64 pixels.
SIZES = {"yolo-small.cfg": 448, "cspx-p7-mish_hp.cfg": 128, "alexnet.cfg": 227, "strided.cfg": 224, "vgg-16.cfg": 224}
SHAPE = r"\d+×\d+×\d+"


def section_names(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    return {name.strip() for name in re.findall(r"^\s*\[([^\]]+)\]", text, re.M)}


def zeroed_build(spec) -> netcfg.Network:
    with torch.device("meta"):
        model = netcfg.build(spec)
    model.to_empty(device="cpu")
    with torch.no_grad():
        for tensor in (*model.parameters(), *model.buffers()):
            tensor.zero_()
    return model


@pytest.mark.parametrize("name", CFGS)
def test_shared_cfg(name, shared_cfgs):
    path = shared_cfgs / name
    size = SIZES.get(Path(name).name, 64)
    refused = section_names(path) & REFUSED
    resnet = re.fullmatch(r"resnet\d+\.cfg", Path(name).name) is not None
    if refused or resnet:
        with pytest.raises(netcfg.CfgError) as exc:
            netcfg.parse(path, width=size, height=size)
        items = exc.value.items
        for section in refused:
            assert any(i.section == section and "refused" in i.message for i in items), section
        if resnet:
            assert any(i.section == "shortcut" and re.search(f"{SHAPE}.*{SHAPE}", i.message) for i in items)
        return
    spec = netcfg.parse(path, width=size, height=size)
    model = zeroed_build(spec)
    every = list(range(len(spec.layers)))
    with torch.no_grad():
        outs = model(torch.randn(1, spec.net.channels, size, size), return_layers=every)
    for layer in spec.layers:
        out = outs[layer.index]
        assert torch.isfinite(out).all(), layer.index
        if not layer.section.is_output:
            assert tuple(out.shape[1:]) == layer.shape, (layer.index, layer.section.type_name)


@pytest.mark.parametrize("name, total", [("yolov3.cfg", 65.879), ("yolov3-tiny.cfg", 5.571), ("yolov4.cfg", 60.137)])
def test_section_bflops_add_up_to_darknets_total(name, total, shared_cfgs):
    """Darknet counts convolutions, pools and shortcuts; the other layers count nothing."""
    spec = netcfg.parse(shared_cfgs / name, width=416, height=416)
    counted = [layer.section.bflops(list(layer.input_shapes), layer.shape) for layer in spec.layers]
    assert round(sum(b or 0.0 for b in counted), 3) == total
