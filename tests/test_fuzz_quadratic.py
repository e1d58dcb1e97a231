"""The paths fuzzing found quadratic (or repeated) stay linear: checked by the work done (calls counted,
objects kept), not by the clock, so a loaded machine cannot make them flake."""

from __future__ import annotations

import pytest
from fuzzkit import include_bomb

import netcfg
from netcfg import budget, compose, spec
from netcfg.section import EXAMPLE_NET
from netcfg.sections import conv

CONV = "[convolutional]\nfilters=2\nsize=1\n"


def test_mixconv_with_3000_sizes_is_refused_at_the_key_before_any_split(monkeypatch):
    calls = []
    monkeypatch.setattr(conv, "channel_split", lambda *a: calls.append(a))
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.parse(EXAMPLE_NET + "[mixconv]\nfilters=3000\nsizes=" + ",".join(["3"] * 3000) + "\n")
    assert [(item.key, item.line) for item in exc.value.items] == [("sizes", 7)]
    assert "at most 64 items" in exc.value.items[0].message and not calls


def test_10000_out_of_range_references_in_one_route_are_one_located_error():
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.parse(EXAMPLE_NET + CONV + "[route]\nlayers=" + ",".join(["99999"] * 10000) + "\n")
    (item,) = exc.value.items
    assert (item.key, item.layer) == ("layers", 1) and "outside layers 0..0" in item.message


def test_out_of_range_references_in_many_layers_are_capped_reports():
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.parse(EXAMPLE_NET + CONV + "[route]\nlayers=99999\n" * 1000)
    text = str(exc.value)
    assert len(exc.value.items) == 1000 and text.count("outside layers") == 100 and text.endswith("... and 900 more")


def test_shape_inference_does_not_rebuild_the_finished_layers_per_layer(monkeypatch):
    """Each layer used to get a fresh {index: layer} of every layer before it: 20,000 routes took 66 s."""
    seen = []
    real = spec._with_shared

    def spy(layer, scope, done, net):
        seen.append(done)  # kept alive, so a rebuilt dict cannot reuse an old one's id
        return real(layer, scope, done, net)

    monkeypatch.setattr(spec, "_with_shared", spy)
    netcfg.parse(EXAMPLE_NET + CONV + "[route]\nlayers=-1\n" * 200)
    assert len(seen) == 201 and len({id(d) for d in seen}) == 1


def test_an_include_fan_out_reads_each_file_once(monkeypatch, tmp_path):
    """8**3 includes of three files: three reads, not 584 (a fan-out of 8**5 took minutes)."""
    reads = []
    real = compose.read_sections
    monkeypatch.setattr(compose, "read_sections", lambda data, name: reads.append(name) or real(data, name))
    assert len(netcfg.parse(include_bomb(tmp_path, 3)).layers) == 8**3
    assert sorted(reads) == sorted(str(tmp_path / f"fan{level}.cfg") for level in range(3))


def test_the_budget_counts_equal_layers_parameters_once(monkeypatch):
    """repeat=1000: the first convolution (on the input) and one for the 999 equal copies."""
    counted = []
    real = budget._parameters
    monkeypatch.setattr(budget, "_parameters", lambda s, layer: counted.append(layer.index) or real(s, layer))
    found = budget.estimate(netcfg.parse(EXAMPLE_NET + "[convolutional]\nfilters=4\nsize=3\npad=1\nrepeat=1000\n"))
    assert counted == [0, 1]
    assert found.layer_parameters == (4 * 8 * 9 + 4,) + (4 * 4 * 9 + 4,) * 999
