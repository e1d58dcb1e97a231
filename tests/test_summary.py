"""`netcfg.summary`: per-layer parameters and BFLOPs against formulas written out here."""

from typing import ClassVar

import pytest
import torch
from torch import nn

import netcfg
from netcfg.registry import register
from netcfg.section import LayerCall, Section
from netcfg.summary import summarize

SMALL = """[net]
width=16
height=16
channels=4
[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky
[maxpool]
size=2
stride=2
[convolutional]
filters=8
size=1
groups=2
activation=linear
[shortcut]
from=-2
weights_type=per_feature
[route]
layers=-1, -3
[upsample]
stride=2
"""


def test_small_network_rows_match_darknet_formulas():
    summary = summarize(netcfg.build(SMALL))
    conv0, pool, conv2, shortcut, route, upsample = summary.layers
    assert conv0.bflops == pytest.approx(2 * (4 * 8 * 3 * 3) * (8 * 8) / 1e9)
    assert conv0.params == 4 * 8 * 3 * 3 + 2 * 8
    assert pool.bflops == pytest.approx(2 * 2 * 8 * (4 * 4) / 1e9)
    assert conv2.bflops == pytest.approx(2 * (8 // 2 * 8) * (4 * 4) / 1e9)
    assert conv2.params == 8 // 2 * 8 + 8
    assert shortcut.bflops == pytest.approx(2 * 8 * 4 * 4 * 1 / 1e9)  # doubled: weighted shortcut
    assert shortcut.params == 2
    assert route.bflops == upsample.bflops == 0
    assert (route.sources, route.output_shape) == ((3, 1), (16, 4, 4))
    assert summary.total_params == sum(row.params for row in summary.layers)
    assert summary.total_bflops == pytest.approx(sum(row.bflops for row in summary.layers))


def test_table_shows_darknet_columns_and_totals():
    text = str(summarize(netcfg.build(SMALL)))
    assert "input 16 x 16 x 4 (W x H x C)" in text
    assert "2 × multiply-adds" in text
    row0 = next(line for line in text.splitlines() if line.lstrip().startswith("0 "))
    assert row0.split()[:4] == ["0", "convolutional", "8", "3x3/2"]
    assert "16 x  16 x    4 ->    8 x   8 x    8" in row0
    route = next(line for line in text.splitlines() if " route " in line)
    assert route.endswith("3, 1")
    assert "parameters: 346" in text.splitlines()[-2]
    assert text.splitlines()[-1].startswith("estimate: 346 parameters (0.000 GB as float32), peak layer outputs")


class Flatten(nn.Module):
    """Flatten then a linear layer, to check the Linear count."""

    def __init__(self, features: int, out: int):
        super().__init__()
        self.fc = nn.Linear(features, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1)).reshape(x.shape[0], -1, 1, 1)


@pytest.fixture
def user_sections(scratch_registry):
    """Two user section types: one counted generically (Linear), one with its own `bflops`."""

    @register("summary_test_fc", family="test")
    class FcSection(Section):
        out: int = 10

        def infer(self, shapes, ctx):
            return self.out, 1, 1

        def layer(self, shapes, ctx):
            c, h, w = shapes[0]
            return LayerCall(Flatten, dict(features=c * h * w, out=self.out))

    @register("summary_test_fixed", family="test")
    class FixedSection(FcSection):
        reported: ClassVar[float] = 1.5

        def bflops(self, shapes, output):
            return self.reported


def test_linear_counted_and_section_override_replaces_generic(user_sections):
    cfg = "[net]\nwidth=4\nheight=4\nchannels=2\n[summary_test_fc]\nout=6\n[summary_test_fixed]\nout=3\n"
    fc, fixed = summarize(netcfg.build(cfg)).layers
    assert fc.bflops == pytest.approx(2 * (2 * 4 * 4) * 6 / 1e9)
    assert fc.params == 2 * 4 * 4 * 6 + 6
    assert fixed.bflops == 1.5


def test_summary_leaves_the_model_as_it_was():
    model = netcfg.build(SMALL)
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    summarize(model)
    assert model.training
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks for m in model.modules())


def test_yolov3_tiny_total_is_conv_plus_maxpool_formula():
    model = netcfg.build("yolov3-tiny")
    expected = 0.0
    for layer in model.spec.layers:
        c, h, w = layer.shape
        cin = layer.input_shapes[0][0]
        if layer.section.type_name == "convolutional":
            expected += 2 * cin * c * layer.section.size**2 * h * w / 1e9
        if layer.section.type_name == "maxpool":
            expected += layer.section.size**2 * cin * h * w / 1e9
    assert summarize(model).total_bflops == pytest.approx(expected, rel=1e-9)
    assert round(expected, 3) == 5.571
