"""Every batch norm in the pyramid, context, fusion and transform blocks sits in a `ConvBNAct`, so
folding those (what `Network.fuse()` does) removes all of them and keeps the output."""

import pytest
import torch
from blockcheck import randomize_bn
from torch import nn

import netcfg
from netcfg.modules.common import ConvBNAct
from netcfg.registry import section_types
from netcfg.section import EXAMPLE_NET

FAMILIES = ("pyramid", "context", "fusion", "transform")
TYPES = [t for t in section_types() if t.model.family in FAMILIES]


def test_the_families_register_their_sections():
    names = {t.name for t in TYPES}
    assert names == {"spp", "aspp", "ppm", "strip", "rfb", "rfbs", "ssh", "asff", "seb", "stn"}


@pytest.mark.parametrize("section_type", TYPES, ids=lambda t: t.name)
def test_folding_every_conv_bn_keeps_the_output(section_type):
    model = netcfg.build(EXAMPLE_NET + section_type.model.example)
    randomize_bn(model)
    spec = model.spec
    x = torch.randn(2, spec.net.channels, spec.net.height, spec.net.width)
    with torch.no_grad():
        before = model(x)
        for module in list(model.modules()):
            if isinstance(module, ConvBNAct):
                module.fuse()
        after = model(x)
    assert not [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)
