"""Darknet .weights: tensors land where darknet puts them, bytes round-trip, partial files load
their prefix, and every broken file is refused with the model left bit-identical."""

from __future__ import annotations

import os
import struct
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import netcfg
from netcfg import DarknetHeader, PartialWeightsWarning, WeightsError, load_darknet_weights, save_darknet_weights
from netcfg.registry import section_types
from netcfg.section import EXAMPLE_NET

LAYER_TYPES = [t for t in section_types() if t.name not in ("net", "network")]
NET = "[net]\nwidth=8\nheight=8\nchannels=3\n"

#: Layers: 0 conv+bn, 1 conv, 2 maxpool, 3 maxpool (size 1), 4 shortcut with per-channel weights,
#: 5 conv stored `flipped`. FLOATS: how many floats each holds in the file.
CFG = NET + (
    "[convolutional]\nfilters=4\nsize=3\npad=1\nbatch_normalize=1\nactivation=leaky\n"
    "[convolutional]\nfilters=4\nsize=1\nactivation=linear\n"
    "[maxpool]\nsize=2\nstride=2\n"
    "[maxpool]\nsize=1\nstride=1\n"
    "[shortcut]\nfrom=-2\nweights_type=per_channel\n"
    "[convolutional]\nfilters=2\nsize=1\nflipped=1\nactivation=linear\n"
)
FLOATS = [4 * 4 + 4 * 3 * 3 * 3, 4 + 4 * 4, 0, 0, 2 * 4, 2 + 4 * 2]

HEADER = struct.pack("<iiiQ", 0, 2, 5, 123456789012)


def file_floats(seed: int = 0) -> np.ndarray:
    """Distinct values for every float of the file, so a misplaced tensor cannot go unnoticed."""
    count = sum(FLOATS)
    return (np.arange(count, dtype=np.float32) + 1) * np.float32(0.01) * (1 + seed)


def write(path, header: bytes, floats: np.ndarray) -> str:
    path.write_bytes(header + floats.astype("<f4").tobytes())
    return str(path)


def snapshot(model: nn.Module) -> dict[str, bytes]:
    return {k: v.detach().cpu().numpy().tobytes() for k, v in model.state_dict().items()}


@pytest.fixture
def model() -> netcfg.Network:
    torch.manual_seed(0)
    return netcfg.build(CFG)


def test_each_tensor_gets_darknets_values(model, tmp_path):
    data = file_floats()
    path = write(tmp_path / "w.weights", HEADER, data)
    assert load_darknet_weights(model, path) == 6
    conv0, conv1, shortcut, conv5 = model.layers[0], model.layers[1], model.layers[4], model.layers[5]
    parts = np.split(data, np.cumsum([4, 4, 4, 4, 108, 4, 16, 8, 2, 8])[:-1])
    expected = [
        (conv0.bn.bias, parts[0]),
        (conv0.bn.weight, parts[1]),
        (conv0.bn.running_mean, parts[2]),
        (conv0.bn.running_var, parts[3]),
        (conv0.conv.weight, parts[4].reshape(4, 3, 3, 3)),
        (conv1.conv.bias, parts[5]),
        (conv1.conv.weight, parts[6].reshape(4, 4, 1, 1)),
        (shortcut.weights, parts[7].reshape(2, 4)),
        (conv5.conv.bias, parts[8]),
        # flipped=1: darknet reads the matrix as [c·size·size][filters] and transposes it
        (conv5.conv.weight, parts[9].reshape(4, 2).T.reshape(2, 4, 1, 1)),
    ]
    for tensor, values in expected:
        np.testing.assert_array_equal(tensor.detach().numpy(), values)
    assert model.darknet_header == DarknetHeader(0, 2, 5, 123456789012)


def test_build_with_weights_loads_them(tmp_path):
    path = write(tmp_path / "w.weights", HEADER, file_floats())
    model = netcfg.build(CFG, weights=path)
    np.testing.assert_array_equal(model.layers[0].bn.bias.detach().numpy(), file_floats()[:4])
    assert not model.training


@pytest.mark.parametrize(
    "header",
    [
        struct.pack("<iiiQ", 0, 2, 5, 2**40 + 7),  # seen as uint64
        struct.pack("<iiiI", 0, 1, 0, 4000),  # major·10+minor < 2: seen as uint32
        struct.pack("<iiiQ", 1001, 2, 0, 99),  # > 1000: uint64 seen (AlexeyAB), transposed matrices
    ],
    ids=["v0.2", "v0.1", "v1001"],
)
def test_save_of_load_gives_the_same_bytes(model, tmp_path, header):
    rng = np.random.default_rng(1)
    path = write(tmp_path / "in.weights", header, rng.standard_normal(sum(FLOATS)).astype(np.float32))
    if header[4:8] == struct.pack("<i", 1001):
        with pytest.warns(UserWarning, match="marks darknet's old format"):
            load_darknet_weights(model, path, validate=False)
    else:
        load_darknet_weights(model, path, validate=False)  # any floats, negative variances included
    save_darknet_weights(model, tmp_path / "out.weights")
    assert (tmp_path / "out.weights").read_bytes() == (tmp_path / "in.weights").read_bytes()


def test_header_seen_width_follows_the_version():
    assert DarknetHeader(0, 2, 0).size == 20 and DarknetHeader(1, 0, 0).size == 20
    assert DarknetHeader(0, 1, 0).size == 16 and DarknetHeader(0, 1000, 0).size == 20
    assert DarknetHeader(0, 1001, 0).transpose and not DarknetHeader(0, 2, 5).transpose
    blob = struct.pack("<iiiI", 0, 1, 3, 77)
    assert DarknetHeader.from_bytes(blob, "f") == DarknetHeader(0, 1, 3, 77)


def test_fresh_model_saves_darknets_current_header_and_reloads(model, tmp_path):
    save_darknet_weights(model, tmp_path / "a.weights")
    blob = (tmp_path / "a.weights").read_bytes()
    assert blob[:20] == struct.pack("<iiiQ", 0, 2, 5, 0)
    assert len(blob) == 20 + 4 * sum(FLOATS)
    torch.manual_seed(5)
    other = netcfg.build(CFG)
    load_darknet_weights(other, tmp_path / "a.weights")
    assert snapshot(other) == snapshot(model)


def test_partial_file_loads_the_prefix_and_says_so(model, tmp_path):
    data = file_floats()
    prefix = sum(FLOATS[:2])  # layers 0 and 1 only, like darknet53.conv.74
    path = write(tmp_path / "p.weights", HEADER, data[:prefix])
    before = snapshot(model)
    with pytest.warns(PartialWeightsWarning, match="loaded layers 0..3 of 6"):
        covered = load_darknet_weights(model, path)
    # layers 2, 3 (maxpools) hold nothing; layer 4 (shortcut weights) is the first the file lacks
    assert covered == 4
    np.testing.assert_array_equal(model.layers[1].conv.bias.detach().numpy(), data[124:128])
    after = snapshot(model)
    for key in ("layers.4.weights", "layers.5.conv.weight", "layers.5.conv.bias"):
        assert after[key] == before[key]
    save_darknet_weights(model, tmp_path / "again.weights", cutoff=covered)
    assert (tmp_path / "again.weights").read_bytes() == (tmp_path / "p.weights").read_bytes()


def test_header_only_file_loads_nothing(model, tmp_path):
    before = snapshot(model)
    path = write(tmp_path / "h.weights", HEADER, np.zeros(0, np.float32))
    with pytest.warns(PartialWeightsWarning):
        assert load_darknet_weights(model, path) == 0
    assert snapshot(model) == before


def test_complete_file_gives_no_warning(model, tmp_path):
    path = write(tmp_path / "w.weights", HEADER, file_floats())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_darknet_weights(model, path)


def expect_refusal(model, path, *fragments: str) -> None:
    """The load fails with every fragment in the message and leaves every tensor bit-identical."""
    before = snapshot(model)
    with pytest.raises(WeightsError) as exc:
        load_darknet_weights(model, path)
    for fragment in fragments:
        assert fragment in str(exc.value)
    assert snapshot(model) == before
    assert not hasattr(model, "darknet_header")


def test_truncated_tensor_is_refused(model, tmp_path):
    data = file_floats()
    cut = sum(FLOATS[:5]) + 3  # three of layer 5's ten floats
    path = write(tmp_path / "t.weights", HEADER, data[:cut])
    expect_refusal(model, path, "layer 5 [convolutional]", "expects 10 floats", "only 3 floats are left")


def test_file_ending_inside_a_float_is_refused(model, tmp_path):
    path = tmp_path / "t.weights"
    path.write_bytes(HEADER + file_floats()[: sum(FLOATS[:2])].tobytes() + b"\x01\x02")
    expect_refusal(model, path, "layer 4 [shortcut]", "expects 8 floats", "2 stray bytes")


@pytest.mark.parametrize(("extra", "what"), [(b"\0\0\0\0", "1 float "), (b"\0\0", "0 floats and 2 stray bytes")])
def test_trailing_data_is_refused(model, tmp_path, extra, what):
    path = tmp_path / "t.weights"
    path.write_bytes(HEADER + file_floats().tobytes() + extra)
    expect_refusal(model, path, what, "trailing", "layer 5 [convolutional]")


@pytest.mark.parametrize(
    ("blob", "fragment"),
    [
        (b"", "too short"),
        (struct.pack("<iii", 0, 2, 5), "needs 20 bytes"),
        (struct.pack("<iiiI", 0, 2, 5, 0), "needs 20 bytes"),
        (b"[net]\nwidth=416\nheight=416\n", "not a darknet .weights file"),
        (struct.pack("<iiiQ", -1, 2, 5, 0), "implausible"),
    ],
    ids=["empty", "no-seen", "short-seen", "text", "negative"],
)
def test_bad_header_is_refused(model, tmp_path, blob, fragment):
    path = tmp_path / "h.weights"
    path.write_bytes(blob)
    expect_refusal(model, path, fragment)


def test_missing_file_is_a_weights_error(model, tmp_path):
    expect_refusal(model, tmp_path / "nope.weights", "cannot read weights file")


def test_layer_the_format_cannot_describe_stops_or_refuses(model, tmp_path):
    model.layers[2] = nn.Conv2d(4, 4, 1)  # owns parameters but has no darknet_tensors()
    short = write(tmp_path / "s.weights", HEADER, file_floats()[: sum(FLOATS[:2])])
    with pytest.warns(PartialWeightsWarning):
        assert load_darknet_weights(model, short) == 2
    del model.darknet_header
    full = write(tmp_path / "f.weights", HEADER, file_floats())
    expect_refusal(model, full, "layer 2 [maxpool]", "cannot describe", "18 floats are left")
    with pytest.raises(WeightsError, match="layer 2"):
        save_darknet_weights(model, tmp_path / "o.weights")


def test_fused_network_is_refused(model, tmp_path):
    model.fused = True
    with pytest.raises(WeightsError, match="fused"):
        save_darknet_weights(model, tmp_path / "o.weights")
    expect_refusal(model, write(tmp_path / "w.weights", HEADER, file_floats()), "fused")
    assert not (tmp_path / "o.weights").exists()


def test_loaded_values_keep_the_models_dtype(tmp_path):
    model = netcfg.build(CFG).double()
    load_darknet_weights(model, write(tmp_path / "w.weights", HEADER, file_floats()))
    assert model.layers[1].conv.bias.dtype == torch.float64
    save_darknet_weights(model, tmp_path / "o.weights")
    assert (tmp_path / "o.weights").read_bytes() == (tmp_path / "w.weights").read_bytes()


CONNECTED = NET + (
    "[convolutional]\nfilters=2\nsize=1\nstride=4\nactivation=linear\n[connected]\noutput=3\nbatch_normalize=1\n"
)


@pytest.mark.parametrize(("major", "minor", "transposed"), [(0, 2, False), (0, 1001, True), (1001, 0, True)])
def test_connected_order_and_old_transposed_matrices(tmp_path, major, minor, transposed):
    # conv: bias 2, weights 2·3; connected (2·2·2 = 8 inputs → 3): bias, weights, bn scale, mean, var
    model = netcfg.build(CONNECTED)
    data = np.arange(2 + 6 + 3 + 24 + 9, dtype=np.float32) / 7
    header = DarknetHeader(major, minor, 0, 42).to_bytes()
    path = write(tmp_path / "c.weights", header, data)
    load_darknet_weights(model, path)
    connected = model.layers[1]
    bias, matrix, scale, mean, var = np.split(data[8:], [3, 27, 30, 33])
    weight = matrix.reshape(8, 3).T if transposed else matrix.reshape(3, 8)
    np.testing.assert_array_equal(connected.linear.weight.detach().numpy(), weight)
    for tensor, values in [(connected.bn.bias, bias), (connected.bn.weight, scale)]:
        np.testing.assert_array_equal(tensor.detach().numpy(), values)
    np.testing.assert_array_equal(connected.bn.running_mean.numpy(), mean)
    np.testing.assert_array_equal(connected.bn.running_var.numpy(), var)
    save_darknet_weights(model, tmp_path / "o.weights")
    assert (tmp_path / "o.weights").read_bytes() == (tmp_path / "c.weights").read_bytes()


@pytest.mark.parametrize("section_type", LAYER_TYPES, ids=lambda t: t.name)
def test_every_section_example_round_trips_or_is_refused(section_type, tmp_path):
    torch.manual_seed(0)
    model = netcfg.build(EXAMPLE_NET + section_type.model.example)
    undescribed = [
        i for i, m in enumerate(model.layers) if not hasattr(m, "darknet_tensors") and any(True for _ in m.parameters())
    ]
    if undescribed:
        with pytest.raises(WeightsError, match=f"layer {undescribed[0]} .*cannot describe"):
            save_darknet_weights(model, tmp_path / "a.weights")
        return
    save_darknet_weights(model, tmp_path / "a.weights")
    torch.manual_seed(1)
    other = netcfg.build(EXAMPLE_NET + section_type.model.example)
    assert load_darknet_weights(other, tmp_path / "a.weights") == len(other.layers)
    assert snapshot(other) == snapshot(model)
    save_darknet_weights(other, tmp_path / "b.weights")
    assert (tmp_path / "b.weights").read_bytes() == (tmp_path / "a.weights").read_bytes()


def test_darknet53_conv_74_loads_into_yolov3(shared_cfgs, tmp_path):
    """The classic partial file: darknet53's first 74 layers (`darknet partial ... 74`) give yolov3
    its backbone; layer 74 (a shortcut) holds nothing, so 75 layers are covered."""
    torch.manual_seed(0)
    darknet53 = netcfg.build(shared_cfgs / "darknet53.cfg", width=64, height=64)
    save_darknet_weights(darknet53, tmp_path / "darknet53.conv.74", cutoff=74)
    yolov3 = netcfg.build(shared_cfgs / "yolov3.cfg", width=64, height=64)
    head_before = snapshot(yolov3.layers[75])
    with pytest.warns(PartialWeightsWarning, match="before layer 75"):
        assert load_darknet_weights(yolov3, tmp_path / "darknet53.conv.74") == 75
    for i in range(74):
        assert snapshot(yolov3.layers[i]) == snapshot(darknet53.layers[i]), f"layer {i}"
    assert snapshot(yolov3.layers[75]) == head_before


def test_really_fused_network_is_refused(model, tmp_path):
    model.fuse()
    with pytest.raises(WeightsError, match="fused"):
        save_darknet_weights(model, tmp_path / "o.weights")


@pytest.mark.parametrize(("value", "what"), [(np.nan, "NaN or infinite"), (np.inf, "NaN or infinite")])
def test_non_finite_values_are_refused_naming_layer_and_tensor(model, tmp_path, value, what):
    floats = file_floats()
    floats[3] = value  # layer 0's bn.bias
    path = write(tmp_path / "n.weights", HEADER, floats)
    expect_refusal(model, path, "layer 0 [convolutional] bn.bias", what)
    assert load_darknet_weights(model, path, validate=False) == 6


def test_negative_variances_are_refused(model, tmp_path):
    floats = file_floats()
    floats[4 + 4 + 4 + 1] = -1.0  # layer 0: bias 4, scale 4, mean 4, then var
    expect_refusal(model, write(tmp_path / "v.weights", HEADER, floats), "bn.running_var", "negative variances")


def test_a_huge_file_is_refused_before_it_is_read(model, tmp_path):
    path = tmp_path / "huge.weights"
    with path.open("wb") as f:
        f.write(HEADER)
        f.truncate(6 * 2**30)  # sparse: nothing is written, and nothing may be read
    expect_refusal(model, path, "trailing data")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_without_blocking(model, tmp_path):
    fifo = tmp_path / "pipe.weights"
    os.mkfifo(fifo)
    expect_refusal(model, fifo, "not a regular file")
