"""Registry-wide checks: every registered section type documents a working example."""

import pytest
import torch

import netcfg
from netcfg.registry import section_types
from netcfg.section import EXAMPLE_NET

LAYER_TYPES = [t for t in section_types() if t.name not in ("net", "network")]


@pytest.mark.parametrize("section_type", LAYER_TYPES, ids=lambda t: t.name)
def test_every_section_example_builds_and_runs(section_type):
    assert section_type.model.example, f"[{section_type.name}] has no example"
    assert f"[{section_type.name}]" in section_type.model.example
    model = netcfg.build(EXAMPLE_NET + section_type.model.example)
    spec = model.spec
    out = model(torch.randn(2, spec.net.channels, spec.net.height, spec.net.width), return_layers=[-1])[-1]
    assert tuple(out.shape[1:]) == spec.layers[-1].shape or section_type.model.is_output
    assert torch.isfinite(out).all()


def test_unknown_section_and_key_suggest_the_closest_name():
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.parse(EXAMPLE_NET + "[convolutionl]\nfilters=2\n[maxpool]\nsise=2\n")
    first, second = exc.value.items
    assert "did you mean 'convolutional'" in first.message and first.line == 5
    assert second.key == "sise" and "did you mean 'size'" in second.message and second.line == 8
