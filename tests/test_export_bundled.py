"""Every bundled cfg exports at a small size (32×32; the block cfgs at 4×4) and matches onnxruntime.
Exporting all of them takes many minutes on two cores, so CI exports three (a detector with each
head layout it shares with the others, and a block cfg) and the rest run with NETCFG_EXPORT_BUNDLED=1;
CI covers every section through tests/test_export_sections.py."""

import os

import pytest
from exportcheck import RTOL, seeded, tolerance

import netcfg
from netcfg.export.onnx import _example
from netcfg.resources import bundled_cfgs

#: Exported in every run; the others only by hand.
ALWAYS = {"yolov3-tiny.cfg", "yolov3-tiny-se.cfg", "resnet50-se-block256.cfg"}
BY_HAND = pytest.mark.skipif(
    os.environ.get("NETCFG_EXPORT_BUNDLED") != "1", reason="slow: set NETCFG_EXPORT_BUNDLED=1 to export every cfg"
)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=() if n in ALWAYS else BY_HAND) for n in sorted(bundled_cfgs())]
)
def test_bundled_cfg_exports_and_matches_onnxruntime(name):
    size = 32 if netcfg.parse(name).input_shape[0] == 3 else 4
    model = seeded(netcfg.build(name, width=size, height=size))
    (parity,) = netcfg.export_onnx(model).parity
    x = _example(model, parity.input_shape, seed=len(parity.input_shape) + sum(parity.input_shape))
    assert parity.within(tolerance(model, x), RTOL), parity
