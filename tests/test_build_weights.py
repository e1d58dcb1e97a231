"""`build(cfg, weights=...)` reads the file straight into fresh tensors: the network equals a normal
build loaded with `load_darknet_weights`, spends no random initialisation on what the file covers,
keeps the class's own initialisation for what it does not, and refuses bad files alike."""

from __future__ import annotations

import errno
import struct

import numpy as np
import pytest
import torch
from test_weights import CFG, FLOATS, HEADER, file_floats, snapshot, write

import netcfg
from netcfg import PartialWeightsWarning, WeightsError, load_darknet_weights, loading, save_darknet_weights
from netcfg.network import layer_module
from netcfg.registry import register, section_types
from netcfg.section import EXAMPLE_NET, LayerCall, Section

EXAMPLES = {t.name: EXAMPLE_NET + t.model.example for t in section_types() if t.name != "net"}


def randomised_file(cfg: str, path, header: tuple[int, int, int] = (0, 2, 5)) -> str | None:
    """A .weights file of random values (variances positive) for `cfg`, or None when it has no darknet form."""
    torch.manual_seed(1)
    source = netcfg.build(cfg)
    source.darknet_header = netcfg.DarknetHeader(*header)
    with torch.no_grad():
        for tensor in (*source.parameters(), *source.buffers()):
            if tensor.is_floating_point():
                tensor.uniform_(0.5, 1.5)
    try:
        save_darknet_weights(source, path)
    except WeightsError:
        return None
    return str(path)


@pytest.mark.parametrize("cfg", EXAMPLES.values(), ids=EXAMPLES.keys())
def test_build_with_weights_equals_build_then_load(cfg, tmp_path):
    path = randomised_file(cfg, tmp_path / "w.weights")
    if path is None:
        pytest.skip("the section owns parameters a .weights file cannot describe")
    expected = netcfg.build(cfg)
    load_darknet_weights(expected, path)
    model = netcfg.build(cfg, weights=path)
    assert snapshot(model) == snapshot(expected)
    assert model.darknet_header == expected.darknet_header


def test_old_format_with_transposed_matrices_loads_alike(tmp_path):
    cfg = EXAMPLE_NET + "[connected]\noutput=6\nactivation=leaky\n[convolutional]\nfilters=2\nsize=1\nflipped=1\n"
    cfg = cfg.replace("[connected]", "[convolutional]\nfilters=2\nsize=1\n[connected]")
    path = randomised_file(cfg, tmp_path / "old.weights", header=(1001, 2, 0))
    with pytest.warns(UserWarning, match="above 1000"):
        expected = netcfg.build(cfg)
        load_darknet_weights(expected, path)
    with pytest.warns(UserWarning, match="above 1000"):
        model = netcfg.build(cfg, weights=path)
    assert snapshot(model) == snapshot(expected)


def test_a_covering_file_spends_no_random_initialisation(tmp_path):
    path = write(tmp_path / "w.weights", HEADER, file_floats())
    state = torch.random.get_rng_state()
    model = netcfg.build(CFG, weights=path)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert int(model.layers[0].bn.num_batches_tracked) == 0


def test_layers_a_partial_file_lacks_keep_their_own_initialisation(tmp_path):
    data = file_floats()
    path = write(tmp_path / "p.weights", HEADER, data[: sum(FLOATS[:2])])
    torch.manual_seed(7)
    with pytest.warns(PartialWeightsWarning, match="loaded layers 0..3 of 6"):
        model = netcfg.build(CFG, weights=path)
    np.testing.assert_array_equal(model.layers[1].conv.bias.detach().numpy(), data[124:128])
    torch.manual_seed(7)  # the covered layers drew nothing, so layer 5 is the first to draw
    fresh = {"layers.4." + k: v for k, v in layer_module(model.spec, 4).state_dict().items()}
    fresh |= {"layers.5." + k: v for k, v in layer_module(model.spec, 5).state_dict().items()}
    after = model.state_dict()
    for key, value in fresh.items():
        assert torch.equal(after[key], value), key


@pytest.mark.parametrize(
    ("values", "fragments"),
    [
        (lambda d: d[: sum(FLOATS[:5]) + 3], ("layer 5 [convolutional]", "expects 10 floats", "only 3 floats")),
        (lambda d: np.concatenate([d, d[:1]]), ("1 float ", "trailing")),
        (lambda d: np.where(np.arange(d.size) == 130, np.nan, d), ("layer 1 [convolutional]", "NaN or infinite")),
        (lambda d: np.where(np.arange(d.size) == 13, -1, d), ("layer 0 [convolutional]", "negative variances")),
    ],
    ids=["truncated", "trailing", "nan", "negative-variance"],
)
def test_bad_files_are_refused_as_load_refuses_them(tmp_path, values, fragments):
    path = write(tmp_path / "bad.weights", HEADER, values(file_floats()).astype(np.float32))
    with pytest.raises(WeightsError) as built:
        netcfg.build(CFG, weights=path)
    with pytest.raises(WeightsError) as loaded:
        load_darknet_weights(netcfg.build(CFG), path)
    assert str(built.value) == str(loaded.value)
    for fragment in fragments:
        assert fragment in str(built.value)


@pytest.mark.parametrize("build_with_weights", [True, False], ids=["build", "load"])
def test_finite_values_whose_sum_overflows_are_loaded(tmp_path, build_with_weights):
    data = file_floats()
    data[[16, 17, 130]] = np.float32(3e38)  # layer 0's and layer 1's conv weights: each sum overflows to inf
    path = write(tmp_path / "big.weights", HEADER, data)
    model = netcfg.build(CFG, weights=path) if build_with_weights else netcfg.build(CFG)
    if not build_with_weights:
        load_darknet_weights(model, path)
    assert model.layers[0].conv.weight.detach().reshape(-1)[:2].tolist() == [float(np.float32(3e38))] * 2


@pytest.mark.parametrize("values", [(np.inf, -np.inf), (np.inf, 1.0), (-np.inf, np.float32(3e38))])
def test_non_finite_values_among_large_ones_are_refused(tmp_path, values):
    data = file_floats()
    data[[16, 17]] = values
    path = write(tmp_path / "inf.weights", HEADER, data)
    with pytest.raises(WeightsError, match="layer 0 .convolutional. conv.weight holds NaN or infinite"):
        netcfg.build(CFG, weights=path)


def test_a_bad_header_is_refused(tmp_path):
    path = tmp_path / "h.weights"
    path.write_bytes(struct.pack("<iii", 0, 2, 5))
    with pytest.raises(WeightsError, match="needs 20 bytes"):
        netcfg.build(CFG, weights=path)


@pytest.mark.parametrize("workers", [2, 3, 7])
def test_reading_in_several_stretches_gives_the_same_network(tmp_path, monkeypatch, workers):
    monkeypatch.setattr(loading, "_workers", lambda size: workers)
    cfg = CFG + "[connected]\noutput=3\nbatch_normalize=1\nactivation=leaky\n"
    path = randomised_file(cfg, tmp_path / "w.weights", header=(1001, 2, 0))  # the matrix is read transposed
    expected = netcfg.build(cfg)
    with pytest.warns(UserWarning, match="above 1000"):
        load_darknet_weights(expected, path)
        model = netcfg.build(cfg, weights=path)
    assert snapshot(model) == snapshot(expected)


def _cut_while_read(monkeypatch, short: range, broken: range = range(0)) -> None:
    """Make the reads of tensors starting at a file byte in `short` come up short (a file cut while
    being read), and in `broken` fail with an I/O error; the file is read in seven stretches, which
    for CFG puts layer 0, layer 1 and layers 4-5 each in a stretch of its own."""
    read = loading._read_tensor

    def failing(f, tensor, transposed, scratch):
        if f.tell() in broken:
            raise OSError(errno.EIO, "Input/output error")
        return f.tell() not in short and read(f, tensor, transposed, scratch)

    monkeypatch.setattr(loading, "_read_tensor", failing)
    monkeypatch.setattr(loading, "_workers", lambda size: 7)


LAYER_START = [len(HEADER) + 4 * sum(FLOATS[:i]) for i in range(len(FLOATS) + 1)]


def test_a_file_cut_while_read_is_refused(tmp_path, monkeypatch):
    _cut_while_read(monkeypatch, range(LAYER_START[5], LAYER_START[6]))  # the last stretch
    path = write(tmp_path / "w.weights", HEADER, file_floats())
    with pytest.raises(WeightsError, match="it ended early"):
        netcfg.build(CFG, weights=path)


def test_a_read_error_is_refused(tmp_path, monkeypatch):
    _cut_while_read(monkeypatch, range(0), broken=range(LAYER_START[1], LAYER_START[2]))
    path = write(tmp_path / "w.weights", HEADER, file_floats())
    with pytest.raises(WeightsError, match="cannot read weights file .*: Input/output error"):
        netcfg.build(CFG, weights=path)


def test_values_before_a_failed_read_are_judged_first(tmp_path, monkeypatch):
    _cut_while_read(monkeypatch, range(LAYER_START[1], LAYER_START[2]))
    data = file_floats()
    data[3] = np.nan  # layer 0, before the failed read
    with pytest.raises(WeightsError, match="layer 0 .convolutional. bn.bias holds NaN"):
        netcfg.build(CFG, weights=write(tmp_path / "w.weights", HEADER, data))


def test_the_first_failed_read_is_reported_before_later_ones(tmp_path, monkeypatch):
    _cut_while_read(monkeypatch, range(LAYER_START[1], LAYER_START[2]), broken=range(LAYER_START[4], LAYER_START[5]))
    path = write(tmp_path / "w.weights", HEADER, file_floats())
    with pytest.raises(WeightsError, match="it ended early"):
        netcfg.build(CFG, weights=path)


def test_a_failed_read_is_reported_before_later_values(tmp_path, monkeypatch):
    _cut_while_read(monkeypatch, range(LAYER_START[1], LAYER_START[2]))  # layer 1 fails, layers 4-5 are read
    data = file_floats()
    data[-1] = np.nan  # layer 5's weights
    with pytest.raises(WeightsError, match="it ended early"):
        netcfg.build(CFG, weights=write(tmp_path / "w.weights", HEADER, data))


def test_building_with_weights_needs_no_numpy(tmp_path, monkeypatch):
    def refuse(self):
        raise RuntimeError("Numpy is not available")

    monkeypatch.setattr(torch.Tensor, "numpy", refuse)
    path = write(tmp_path / "w.weights", HEADER, file_floats())
    model = netcfg.build(CFG, weights=path)
    assert model.layers[5].conv.bias.tolist() == pytest.approx(file_floats()[-10:-8].tolist())


class _ListsAView(torch.nn.Module):
    """A module whose file entry lists its weight twice, the second time as a view."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.sum()

    def darknet_tensors(self) -> list[torch.Tensor]:
        return [self.weight, self.weight.view(3)]


def test_a_module_listing_a_view_is_built_then_loaded(scratch_registry, tmp_path):
    @register("build_weights_test_view", family="test")
    class ViewSection(Section):
        def infer(self, shapes, ctx):
            return shapes[0]

        def layer(self, shapes, ctx):
            return LayerCall(_ListsAView)

    cfg = EXAMPLE_NET + "[build_weights_test_view]\n"
    path = write(tmp_path / "v.weights", HEADER, np.arange(6, dtype=np.float32))
    model = netcfg.build(cfg, weights=path)
    assert model.layers[0].weight.tolist() == [3.0, 4.0, 5.0]


def test_build_with_weights_makes_each_module_once(tmp_path, monkeypatch):
    """The budget's meta modules are the ones given storage: no layer is instantiated twice."""
    path = tmp_path / "net.weights"
    save_darknet_weights(netcfg.build(CFG), path)
    made = []
    real = netcfg.modules.darknet.DarknetConv.__init__
    monkeypatch.setattr(
        netcfg.modules.darknet.DarknetConv, "__init__", lambda self, *a, **k: made.append(1) or real(self, *a, **k)
    )
    model = netcfg.build(CFG, weights=path)
    convs = sum(isinstance(m, netcfg.modules.darknet.DarknetConv) for m in model.layers)
    assert convs and len(made) == convs
