"""`Network.forward(x, return_layers=[...])`: layer indices and labels, keyed as the caller passed them."""

from pathlib import Path

import pytest
import torch

import netcfg

NET = "[net]\nwidth=8\nheight=8\nchannels=3\n"
BODY = (
    "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=leaky\nname=stem\n"  # layer 0
    "[maxpool]\nsize=2\nstride=2\nname=down\n"  # layer 1
    "[convolutional]\nfilters=4\nsize=1\nactivation=linear\n"  # layer 2
    "[route]\nlayers=stem\n"  # layer 3
)
BLOCK = "[convolutional]\nfilters=2\nsize=1\nactivation=relu\nname=inner\n[avgpool]\n"


@pytest.fixture
def model(tmp_path: Path) -> netcfg.Network:
    (tmp_path / "block.cfg").write_text(BLOCK)
    cfg = tmp_path / "main.cfg"
    cfg.write_text(NET + BODY + "[include]\nfile=block.cfg\nname=head\n")
    return netcfg.build(cfg)


def test_labels_and_indices_are_keys_as_given(model):
    x = torch.randn(2, 3, 8, 8)
    stem = model.layers[0](x)
    down = model.layers[1](stem)
    inner = model.layers[4](stem)
    outs = model(x, return_layers=["down", 0, "head.inner", -1, "stem", "head"])
    assert list(outs) == ["down", 0, "head.inner", -1, "stem", "head"]
    torch.testing.assert_close(outs["down"], down)
    torch.testing.assert_close(outs["head.inner"], inner)
    torch.testing.assert_close(outs["head"], inner.mean((2, 3), keepdim=True))
    assert outs[0] is outs["stem"] and outs[-1] is outs["head"]


def test_a_label_and_its_index_return_the_same_tensor(model):
    outs = model(torch.randn(1, 3, 8, 8), return_layers=[2, "down", 1])
    assert outs["down"] is outs[1] and outs[2].shape == (1, 4, 4, 4)


def test_unknown_label_names_it_and_the_known_labels(model):
    with pytest.raises(
        KeyError, match=r"unknown layer label 'stm' \(did you mean 'stem'\?\); known labels: stem, down"
    ):
        model(torch.randn(1, 3, 8, 8), return_layers=["stm"])
    with pytest.raises(KeyError, match=r"known labels: stem, down, head.inner, head\b"):
        model(torch.randn(1, 3, 8, 8), return_layers=["inner"])


def test_bad_indices_and_a_bare_string_are_refused(model):
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(IndexError, match=r"layer 6 is outside layers 0..5"):
        model(x, return_layers=[6])
    with pytest.raises(IndexError, match=r"layer -7 is outside layers 0..5"):
        model(x, return_layers=[-7])
    with pytest.raises(TypeError, match=r"e.g. \['stem'\]"):
        model(x, return_layers="stem")


def test_labels_are_resolved_once_per_request(model, monkeypatch):
    calls = []
    resolve = type(model)._layer_index
    monkeypatch.setattr(type(model), "_layer_index", lambda self, layer: calls.append(layer) or resolve(self, layer))
    x = torch.randn(1, 3, 8, 8)
    for _ in range(3):
        model(x, return_layers=["down", "head"])
    assert calls == ["down", "head"]
