"""Every real darknet cfg under ../shared/darknet-cfg: refused sections are named, the resnets are
refused at their impossible [shortcut] (darknet asserts there too), everything else parses,
builds and runs forward at a small size, and its `.weights` layout has the size darknet's loader
reads (reckoned from the cfg text by `darknet_layout`); the smaller ones also round-trip a file.

To keep this fast the networks are built on the meta device and then given zeroed storage: the
point here is that every module builds from the spec and produces the shapes shape inference
promised; the numbers are checked layer by layer in the other test files.
"""

import re
from pathlib import Path

import pytest
import torch
from darknet_layout import weights_file_bytes

import netcfg
from netcfg.weights import DARKNET_VERSION, DarknetHeader, file_layout

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "darknet-cfg"
CFGS = sorted(str(p.relative_to(SHARED)) for p in SHARED.rglob("*.cfg")) if SHARED.is_dir() else []

REFUSED = {"deconvolutional"}
#: Networks up to this many parameters also write, reload and compare a whole `.weights` file.
ROUND_TRIP_PARAMETERS = 4_000_000
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
def test_shared_cfg(name, shared_cfgs, tmp_path):
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
    check_weights_layout(model, path, tmp_path)


def check_weights_layout(model: netcfg.Network, path: Path, tmp_path: Path) -> None:
    """The file netcfg writes has the size darknet's loader reads; small networks round-trip one."""
    spec = model.spec
    want = weights_file_bytes(path.read_text(encoding="utf-8", errors="replace"), spec.input_shape)
    floats = sum(entry.floats for entry in file_layout(model, DarknetHeader(*DARKNET_VERSION)))
    assert 20 + 4 * floats == want
    if sum(p.numel() for p in model.parameters()) > ROUND_TRIP_PARAMETERS:
        return
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=gen) + ("running_var" in name))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    netcfg.save_darknet_weights(model, tmp_path / "w.weights")
    assert (tmp_path / "w.weights").stat().st_size == want
    with torch.no_grad():
        for t in (*model.parameters(), *model.buffers()):
            t.zero_()
    assert netcfg.load_darknet_weights(model, tmp_path / "w.weights") == len(spec.layers)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("name, total", [("yolov3.cfg", 65.879), ("yolov3-tiny.cfg", 5.571), ("yolov4.cfg", 60.137)])
def test_section_bflops_add_up_to_darknets_total(name, total, shared_cfgs):
    """Darknet counts convolutions, pools and shortcuts; the other layers count nothing."""
    spec = netcfg.parse(shared_cfgs / name, width=416, height=416)
    counted = [layer.section.bflops(list(layer.input_shapes), layer.shape) for layer in spec.layers]
    assert round(sum(b or 0.0 for b in counted), 3) == total
