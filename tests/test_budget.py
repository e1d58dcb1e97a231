"""Sizes are estimated and refused before anything is allocated: the parameter estimate equals the built
network's count for every section type and bundled cfg, the activation peak follows the liveness rule
(hand-computed here), and a network over budget is a CfgError located at the layer that costs most."""

import pytest

import netcfg
from netcfg.budget import Budget, estimate
from netcfg.registry import section_types
from netcfg.resources import bundled_cfgs
from netcfg.section import EXAMPLE_NET

EXAMPLES = [t for t in section_types() if t.model.example]


@pytest.mark.parametrize("entry", EXAMPLES, ids=lambda t: t.name)
def test_parameter_estimate_equals_the_built_count(entry):
    spec = netcfg.parse(EXAMPLE_NET + entry.model.example)
    model = netcfg.build(spec)
    assert estimate(spec).layer_parameters == tuple(sum(p.numel() for p in m.parameters()) for m in model.layers)


@pytest.mark.parametrize("name", ["yolov3-tiny.cfg", "resnet50.cfg", "googlenet.cfg"])
def test_bundled_estimates_match_their_published_counts(name):
    published = {"yolov3-tiny.cfg": 8_852_366, "resnet50.cfg": 25_557_032, "googlenet.cfg": 6_998_552}
    assert name in bundled_cfgs()
    assert estimate(netcfg.parse(name)).parameters == published[name]


def test_activation_peak_counts_live_outputs_as_the_forward_frees_them():
    """input 3·8·8; layer 0 → 4·8·8; layer 1 → 4·8·8 (0 still read by 2); layer 2 concatenates 0 and 1."""
    cfg = (
        "[net]\nwidth=8\nheight=8\nchannels=3\n"
        "[convolutional]\nfilters=4\nsize=1\n[convolutional]\nfilters=4\nsize=1\n[route]\nlayers=-1,-2\n"
    )
    found = estimate(netcfg.parse(cfg))
    floats = 3 * 64 + 4 * 64 + 4 * 64 + 8 * 64  # the input is the caller's and stays alive
    assert (found.activation_bytes, found.peak_layer) == (4 * floats, 2)


def test_activation_peak_frees_outputs_after_their_last_reader():
    """A chain of three 4·8·8 convolutions: at most two layer outputs (and the input) are alive at once."""
    conv = "[convolutional]\nfilters=4\nsize=1\n"
    found = estimate(netcfg.parse("[net]\nwidth=8\nheight=8\nchannels=3\n" + 3 * conv))
    assert (found.activation_bytes, found.peak_layer) == (4 * (3 * 64 + 2 * 4 * 64), 1)


def test_too_many_parameters_is_refused_at_the_costliest_layer():
    cfg = "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=8\nsize=1\n[connected]\noutput=100000\n"
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.build(cfg, budget=Budget(max_parameters=1_000_000))
    (item,) = exc.value.items
    assert (item.line, item.layer, item.section) == (8, 1, "connected")
    assert "parameters, over the budget of 1,000,000" in item.message
    assert netcfg.build(cfg, budget=Budget(max_parameters=10**8)) is not None


@pytest.mark.parametrize("size", [10**5, 10**6])
def test_huge_inputs_are_refused_before_allocating(size):
    cfg = f"[net]\nwidth={size}\nheight={size}\nchannels=3\n[convolutional]\nfilters=64\nsize=3\npad=1\n"
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.build(cfg)
    item = exc.value.items[0]  # the window's work may be over its budget too, reported after
    assert item.layer == 0 and "GB of layer outputs alive, over the budget" in item.message


def test_a_huge_repeat_is_refused_while_expanding():
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.parse("[net]\nwidth=8\nheight=8\n[convolutional]\nfilters=2\nrepeat=1000000000\n")
    (item,) = exc.value.items
    assert (item.line, item.key) == (6, "repeat") and "more than 100,000 layers" in item.message


@pytest.mark.parametrize(
    "section", ["[maxpool]\nsize=10000\nstride=1\n", "[convolutional]\nfilters=1\nsize=10000\npad=1\n"]
)
def test_a_huge_window_on_a_small_input_is_refused_for_its_work(section):
    """Little memory, but hours of work (found by fuzzing: both hung in the forward): refused at the layer."""
    cfg = "[net]\nwidth=256\nheight=256\nchannels=3\n" + section
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.build(cfg)
    (item,) = exc.value.items
    assert item.layer == 0 and "billion operations, over the budget of 5,000" in item.message
    assert estimate(netcfg.parse(cfg)).layer_window_bflops[0] > 5000


def test_window_work_is_twice_the_multiply_adds_of_a_convolution():
    """8 filters of 3×3 over 4 channels, 16×16 output: 2·9·4·8·256 operations."""
    spec = netcfg.parse("[net]\nwidth=16\nheight=16\nchannels=4\n[convolutional]\nfilters=8\nsize=3\npad=1\n")
    assert estimate(spec).layer_window_bflops == (2 * 9 * 4 * 8 * 256 / 1e9,)


def test_parameters_too_many_for_torch_to_describe_are_a_located_error():
    """in_features·out_features overflows int64 even on the meta device (found by fuzzing: RuntimeError)."""
    cfg = "[net]\nwidth=1000000\nheight=1000000\nchannels=3\n[connected]\noutput=2147483647\n"
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.build(cfg)
    (item,) = exc.value.items
    assert (item.layer, item.section) == (0, "connected") and "too many to count" in item.message
