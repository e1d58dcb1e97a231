"""Composable cfgs: `repeat=`, `name=` labels, `[include]` and `[net] outputs=`."""

from pathlib import Path

import pytest
import torch

import netcfg
from netcfg.spec import NETWORK_INPUT

NET = "[net]\nwidth=16\nheight=16\nchannels=3\n"  # 4 lines: the first layer header is line 5
CONV = "[convolutional]\nfilters={f}\nsize=3\nstride={s}\npad=1\nactivation=leaky\n"


def _errors(cfg) -> list[netcfg.CfgItem]:
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.parse(cfg)
    return exc.value.items


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


# --- repeat ---


def test_repeat_expands_into_real_layers_and_only_the_first_copy_strides():
    spec = netcfg.parse(NET + CONV.format(f=4, s=2) + "repeat=3\n[route]\nlayers=2\n")
    written = netcfg.parse(NET + CONV.format(f=4, s=2) + 2 * CONV.format(f=4, s=1) + "[route]\nlayers=2\n")
    assert [layer.section for layer in spec.layers] == [layer.section for layer in written.layers]
    assert [layer.shape for layer in spec.layers] == [(4, 8, 8)] * 4
    assert spec.layers[3].sources == (2,)


def test_repeat_copies_drop_stride_x_and_stride_y():
    spec = netcfg.parse(NET + "[maxpool]\nsize=2\nstride_x=2\nstride_y=1\nrepeat=2\n")
    assert [layer.section.strides for layer in spec.layers] == [(1, 2), (1, 1)]


def test_repeat_keeps_relative_references_relative_to_each_copy():
    body = CONV.format(f=4, s=1) + CONV.format(f=4, s=1) + "[shortcut]\nfrom=-2\nrepeat=2\n"
    spec = netcfg.parse(NET + body)
    assert [layer.sources for layer in spec.layers[2:]] == [(1, 0), (2, 1)]


def test_a_label_on_a_repeated_section_names_its_last_copy():
    spec = netcfg.parse(NET + CONV.format(f=4, s=2) + "repeat=3\nname=stage\n[route]\nlayers=stage\n")
    assert spec.labels == {"stage": 2} and spec.layers[3].sources == (2,)


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_bad_repeat_is_an_error_at_its_line(value):
    (item,) = _errors(NET + CONV.format(f=4, s=1) + f"repeat={value}\n")
    assert (item.line, item.key) == (11, "repeat") and "integer ≥ 1" in item.message


def test_a_mistake_in_a_repeated_section_is_reported_once():
    (item,) = _errors(NET + "[convolutional]\nfilters=4\nsise=3\nrepeat=4\n")
    assert (item.line, item.key) == (7, "sise")


# --- names ---


def test_labels_are_accepted_wherever_a_layer_index_is():
    body = (
        CONV.format(f=4, s=1)
        + "name=a\n"
        + CONV.format(f=4, s=1)
        + "name=b-2\n[shortcut]\nfrom=a\n[route]\nlayers=b-2,a,-1\n"
    )
    spec = netcfg.parse(NET + body)
    assert spec.layers[2].sources == (1, 0) and spec.layers[3].sources == (1, 0, 2)
    assert spec.labels == {"a": 0, "b-2": 1}


def test_unknown_label_suggests_the_closest():
    (item,) = _errors(NET + CONV.format(f=4, s=1) + "name=stem\n[route]\nlayers=-1,stme\n")
    assert (item.line, item.key) == (13, "layers")
    assert "unknown layer label 'stme'" in item.message and "did you mean 'stem'" in item.message


def test_duplicate_label_names_both_lines():
    (item,) = _errors(NET + CONV.format(f=4, s=1) + "name=x\n" + CONV.format(f=4, s=1) + "name=x\n")
    assert (item.line, item.key) == (18, "name") and "duplicate label 'x' (first defined at line 11)" in item.message


def test_a_label_must_name_an_earlier_layer():
    (item,) = _errors(NET + "[route]\nlayers=later\n" + CONV.format(f=4, s=1) + "name=later\n")
    assert (item.line, item.key) == (6, "layers") and "does not come before" in item.message


@pytest.mark.parametrize("label", ["1st", "a.b", "a,b"])
def test_malformed_labels_are_refused(label):
    (item,) = _errors(NET + CONV.format(f=4, s=1) + f"name={label}\n")
    assert (item.line, item.key) == (11, "name") and "must be letters" in item.message


def test_name_and_repeat_are_not_net_keys():
    """Darknet ignores them in [net], so netcfg warns; strict refuses them."""
    cfg = NET + "name=mynet\n" + CONV.format(f=4, s=1)
    with pytest.warns(netcfg.CfgWarning, match=r":5:1: \[net\] name: unused key"):
        netcfg.parse(cfg)
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.parse(cfg, strict=True)
    (item,) = exc.value.items
    assert (item.line, item.key) == (5, "name") and "unknown key" in item.message


# --- includes ---

BLOCK = (
    "[net]\nwidth=999\nheight=999\nchannels=1\n"  # ignored when included
    "[convolutional]\nfilters=6\nsize=1\nactivation=linear\nname=first\n"  # line 5
    "[maxpool]\nsize=2\nstride=2\n"  # line 10
    "[route]\nlayers=0\n"  # line 13: absolute index inside this file: its own layer 0
    "[shortcut]\nfrom=first\nname=out\n"  # line 15
)


def test_include_inlines_layers_with_their_own_indices_and_labels(tmp_path):
    _write(tmp_path, "block.cfg", BLOCK)
    main = _write(
        tmp_path,
        "main.cfg",
        NET + CONV.format(f=6, s=1) + "[include]\nfile=block.cfg\nname=b\n[route]\nlayers=b.first,b.out,b\n",
    )
    spec = netcfg.parse(main)
    assert [layer.section.type_name for layer in spec.layers] == [
        "convolutional",
        "convolutional",
        "maxpool",
        "route",
        "shortcut",
        "route",
    ]
    assert spec.layers[1].sources == (0,)  # the included file's first layer reads the layer before the include
    assert spec.layers[3].sources == (1,)  # `layers=0` inside block.cfg is its own first layer
    assert spec.layers[5].sources == (1, 4, 4)
    assert spec.labels == {"b": 4, "b.first": 1, "b.out": 4}
    assert spec.layers[1].raw.file == str(tmp_path / "block.cfg")


def test_included_network_equals_the_flat_cfg(tmp_path):
    _write(tmp_path, "block.cfg", BLOCK)
    main = _write(tmp_path, "main.cfg", NET + CONV.format(f=6, s=1) + "[include]\nfile=block.cfg\n")
    flat = NET + CONV.format(f=6, s=1) + BLOCK.split("channels=1\n")[1].replace("layers=0", "layers=1")
    included, written = netcfg.build(main), netcfg.build(flat)
    written.load_state_dict(included.state_dict())
    x = torch.randn(1, 3, 16, 16)
    torch.testing.assert_close(included(x), written(x))


RESIDUAL = "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=leaky\n" * 2 + "[shortcut]\nfrom=-3\n"


def test_an_included_file_reaches_its_input_by_a_relative_reference(tmp_path):
    """`from=-3` on the third layer lands just before the file: its input, the layer before the include."""
    _write(tmp_path, "residual.cfg", RESIDUAL)
    main = _write(tmp_path, "main.cfg", NET + CONV.format(f=4, s=1) + "[include]\nfile=residual.cfg\nrepeat=2\n")
    spec = netcfg.parse(main)
    assert [layer.sources for layer in spec.layers[3::3]] == [(2, 0), (5, 3)]
    included, written = netcfg.build(main), netcfg.build(NET + CONV.format(f=4, s=1) + 2 * RESIDUAL)
    written.load_state_dict(included.state_dict())
    x = torch.randn(1, 3, 16, 16)
    torch.testing.assert_close(included(x), written(x))


def test_the_top_level_file_reaches_the_network_input_by_a_relative_reference():
    model = netcfg.build(NET + RESIDUAL.replace("filters=4", "filters=3"))
    assert model.spec.layers[2].sources == (1, NETWORK_INPUT)
    x = torch.randn(1, 3, 16, 16)
    torch.testing.assert_close(model(x), model(x, return_layers=[1])[1] + x)


def test_include_name_defaults_to_the_file_stem_and_nests(tmp_path):
    _write(tmp_path, "block.cfg", BLOCK)
    _write(tmp_path, "middle.cfg", "[include]\nfile=block.cfg\n")
    main = _write(tmp_path, "main.cfg", NET + "[include]\nfile=middle.cfg\n[route]\nlayers=middle.block.first\n")
    spec = netcfg.parse(main)
    assert spec.labels == {"middle": 3, "middle.block": 3, "middle.block.first": 0, "middle.block.out": 3}
    assert spec.layers[4].sources == (0,)


def test_include_from_cfg_text_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    _write(tmp_path, "block.cfg", BLOCK)
    monkeypatch.chdir(tmp_path)
    assert len(netcfg.parse(NET + "[include]\nfile=block.cfg\n").layers) == 4


def test_repeated_include_labels_name_the_last_copy(tmp_path):
    _write(tmp_path, "block.cfg", BLOCK)
    spec = netcfg.parse(_write(tmp_path, "main.cfg", NET + "[include]\nfile=block.cfg\nrepeat=2\n"))
    assert len(spec.layers) == 8 and spec.labels["block.first"] == 4 and spec.layers[7].sources == (6, 4)


def test_two_unnamed_includes_of_one_file_clash(tmp_path):
    _write(tmp_path, "block.cfg", BLOCK)
    main = _write(tmp_path, "main.cfg", NET + "[include]\nfile=block.cfg\n[include]\nfile=block.cfg\n")
    (item,) = _errors(main)
    assert (
        item.line == 7
        and "duplicate label 'block' (first defined at line 5); give the [include] a name=" in item.message
    )


def test_include_cycle_is_an_error_naming_the_chain(tmp_path):
    _write(tmp_path, "a.cfg", NET + CONV.format(f=4, s=1) + "[include]\nfile=b.cfg\n")
    _write(tmp_path, "b.cfg", CONV.format(f=4, s=1) + "[include]\nfile=a.cfg\n")
    (item,) = _errors(tmp_path / "a.cfg")
    assert (item.file, item.line, item.key) == (str(tmp_path / "b.cfg"), 8, "file")
    assert f"include cycle: {tmp_path / 'a.cfg'} → {tmp_path / 'b.cfg'} → {tmp_path / 'a.cfg'}" in item.message


def test_missing_include_is_an_error_at_the_include_line(tmp_path):
    main = _write(tmp_path, "main.cfg", NET + CONV.format(f=4, s=1) + "[include]\nfile=nowhere.cfg\n")
    (item,) = _errors(main)
    assert (item.file, item.line, item.key) == (str(main), 12, "file") and "no such cfg file" in item.message


def test_include_keys_are_checked(tmp_path):
    items = _errors(NET + CONV.format(f=4, s=1) + "[include]\nfiles=x.cfg\n")
    assert [(i.line, i.key) for i in items] == [(11, "file"), (12, "files")]


def test_errors_inside_an_included_file_name_that_file_and_line(tmp_path):
    block = _write(tmp_path, "block.cfg", "[convolutional]\nfilters=4\nsize=1\n[route]\nlayers=-3\n[maxpool]\nsise=2\n")
    (ref_item, key_item) = _errors(
        _write(tmp_path, "main.cfg", NET + CONV.format(f=4, s=1) + "[include]\nfile=block.cfg\n")
    )
    assert (key_item.file, key_item.line, key_item.key) == (str(block), 7, "sise")
    assert (ref_item.file, ref_item.line, ref_item.key) == (str(block), 5, "layers")
    assert "outside layers 0..0 of this included file" in ref_item.message


def test_syntax_errors_in_an_included_file_name_that_file(tmp_path):
    block = _write(tmp_path, "block.cfg", "[maxpool]\nsize 2\n")
    (item,) = _errors(_write(tmp_path, "main.cfg", NET + CONV.format(f=4, s=1) + "[include]\nfile=block.cfg\n"))
    assert (item.file, item.line) == (str(block), 2)


def test_an_included_file_cannot_see_the_includers_labels(tmp_path):
    _write(tmp_path, "block.cfg", "[route]\nlayers=outer\n")
    (item,) = _errors(
        _write(tmp_path, "main.cfg", NET + CONV.format(f=4, s=1) + "name=outer\n[include]\nfile=block.cfg\n")
    )
    assert item.line == 2 and "unknown layer label 'outer'" in item.message


# --- outputs ---


def test_outputs_are_returned_in_the_listed_order():
    body = (
        CONV.format(f=4, s=2) + "name=p3\n" + CONV.format(f=5, s=2) + "name=p4\n" + CONV.format(f=6, s=2) + "name=p5\n"
    )
    model = netcfg.build(NET.replace("channels=3\n", "channels=3\noutputs=p5,0,-2\n") + body)
    assert model.spec.outputs == (2, 0, 1)
    x = torch.randn(1, 3, 16, 16)
    outs = model(x)
    assert [tuple(o.shape[1:]) for o in outs] == [(6, 2, 2), (4, 8, 8), (5, 4, 4)]
    layers = model(x, return_layers=[2, 0, 1])
    for out, expected in zip(outs, layers.values()):
        torch.testing.assert_close(out, expected)


@pytest.mark.parametrize(
    "outputs, words",
    [("p9", "unknown layer label 'p9'"), ("3", "outside layers 0..1"), ("p3,0", "listed twice"), ("", "lists no")],
)
def test_bad_outputs_are_errors_at_the_key(outputs, words):
    body = CONV.format(f=4, s=2) + "name=p3\n" + CONV.format(f=5, s=2)
    (item,) = _errors(NET + f"outputs={outputs}\n" + body)
    assert (item.line, item.key) == (5, "outputs") and words in item.message
