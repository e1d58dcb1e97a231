"""Keys darknet does not read: darknet prints `Unused field` and goes on, so netcfg warns (located, with a
suggestion) and builds; a near miss of a key the section does not set stays an error (darknet would
silently use the default there); `strict=True` and `netcfg check --strict` refuse every unused key."""

import warnings

import pytest
import torch

import netcfg
from netcfg.cli import main

NET = "[net]\nwidth=16\nheight=16\nchannels=3\n"
HEAD = (
    "[convolutional]\nfilters=21\nsize=1\nactivation=linear\n"
    "[yolo]\nmask=0,1,2\nanchors=4,5, 8,9, 12,10\nnum=3\nclasses=2\n"
    "iou_normalizer=0.07\nbeta_nms=0.6\nuc_normalizer=1.0\nbeta1=0.6\n"
)


def _warnings(cfg: str, **kwargs) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", netcfg.CfgWarning)
        netcfg.parse(cfg, **kwargs)
    return [str(w.message) for w in caught if issubclass(w.category, netcfg.CfgWarning)]


def test_real_files_keys_warn_located_and_build():
    """As in Gaussian_yolov3_BDD.cfg and yolov4-sam-mish-csp-reorg-bfm.cfg: each near miss is of a key
    the section sets, so it cannot be a typo of it."""
    cfg = NET.replace("[net]\n", "[net]\nmax_batches=500\nmax_epochs=100\n") + HEAD
    got = _warnings(cfg)
    assert got == [
        "<cfg>:3:1: [net] max_epochs: unused key: darknet ignores it (did you mean 'max_batches'?)",
        "<cfg>:18:1: [yolo #1] uc_normalizer: unused key: darknet ignores it (did you mean 'iou_normalizer'?)",
        "<cfg>:19:1: [yolo #1] beta1: unused key: darknet ignores it (did you mean 'beta_nms'?)",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", netcfg.CfgWarning)
        model = netcfg.build(cfg)
    assert model(torch.zeros(1, 3, 16, 16), return_layers=[0])[0].shape == (1, 21, 16, 16)


def test_a_typo_of_a_key_the_section_does_not_set_is_an_error():
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.parse(NET + "[convolutional]\nfiltrs=64\nsize=3\n")
    (item,) = exc.value.items
    assert (item.line, item.column, item.layer, item.key) == (6, 1, 0, "filtrs")
    assert item.message == "unknown key (did you mean 'filters'?)"


def test_a_key_near_no_known_key_only_warns():
    assert _warnings(NET + "[convolutional]\nfilters=4\nzzz_custom=1\n") == [
        "<cfg>:7:1: [convolutional #0] zzz_custom: unused key: darknet ignores it"
    ]


def test_a_near_miss_of_a_key_that_is_set_only_warns_with_the_suggestion():
    got = _warnings(NET + "[convolutional]\nfilters=4\nfilter=64\nsize=3\n")
    assert got == ["<cfg>:7:1: [convolutional #0] filter: unused key: darknet ignores it (did you mean 'filters'?)"]


def test_netcfg_sections_refuse_every_unknown_key():
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.parse(NET + "[se]\nzzz_custom=1\n")
    (item,) = exc.value.items
    assert (item.line, item.key, item.message) == (6, "zzz_custom", "unknown key")


def test_strict_refuses_every_unused_key():
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.parse(NET + "[convolutional]\nfilters=4\nmax_epochs=3\n", strict=True)
    (item,) = exc.value.items
    assert (item.line, item.key, item.message) == (7, "max_epochs", "unknown key")


def test_check_strict_exits_1_and_plain_check_warns(tmp_path, capsys):
    path = tmp_path / "net.cfg"
    path.write_text(NET + "[convolutional]\nfilters=4\nmax_epochs=3\n")
    assert main(["check", str(path)]) == 0
    captured = capsys.readouterr()
    assert f"{path}: OK" in captured.out and "max_epochs: unused key" in captured.err
    assert main(["check", "--strict", str(path)]) == 1
    assert f"{path}:7:1: [convolutional #0] max_epochs: unknown key" in capsys.readouterr().out
