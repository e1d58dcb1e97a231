"""Every registered section type exports with the dynamo exporter and matches onnxruntime: each
section's `example` (at 32×32, seeded weights) in one graph, compared network by network.
Tolerances: max abs error ≤ 1e-4 × (1 + the largest output magnitude), max rel error ≤ 1e-3."""

import torch
from exportcheck import RTOL, parity_each, seeded, tolerance

import netcfg
from netcfg.registry import section_types
from netcfg.section import EXAMPLE_NET


def test_every_section_example_exports_and_matches_onnxruntime():
    networks = {t.name: seeded(netcfg.build(EXAMPLE_NET + t.model.example)) for t in section_types() if t.name != "net"}
    gen = torch.Generator().manual_seed(1)
    inputs = {name: torch.rand(1, 8, 32, 32, generator=gen) for name in networks}
    parity = parity_each(networks, inputs)
    off = {name: str(p) for name, p in parity.items() if not p.within(tolerance(networks[name], inputs[name]), RTOL)}
    assert not off, off
