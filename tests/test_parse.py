import warnings

import pytest

from netcfg import CfgError, CfgWarning
from netcfg.reader import read_sections


def test_darknet_reader_quirks():
    text = "\ufeff# c\r\n[net]\r\nwidth = 416 # trailing\r\n; semi\r\n\r\n[ convolutional ]\nlayers = -1, 61\n"
    net, conv = read_sections(text)
    assert (net.name, net.options["width"].value, net.options["width"].line) == ("net", "416", 3)
    assert conv.name == "convolutional" and conv.line == 6
    assert conv.options["layers"].value == "-1,61"


def test_duplicate_key_first_wins_with_warning_naming_both_lines():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (sec,) = read_sections("[conv]\nsize=3\nsize=5\n")
    assert sec.options["size"].value == "3"
    (w,) = [w for w in caught if issubclass(w.category, CfgWarning)]
    assert ":3:" in str(w.message) and "line 2" in str(w.message)


def test_syntax_errors_are_all_reported_with_lines():
    with pytest.raises(CfgError) as exc:
        read_sections("[net]\nno equals here\nx=1\nalso bad\n[oops\n", "bad.cfg")
    assert [(i.file, i.line) for i in exc.value.items] == [("bad.cfg", 2), ("bad.cfg", 4), ("bad.cfg", 5)]


@pytest.mark.parametrize("data", [b"\xff\xfe\x00\x01junk", b"[net]\x00\n"])
def test_binary_junk_is_refused(data):
    with pytest.raises(CfgError, match="binary"):
        read_sections(data, "junk.cfg")


def test_flags_are_darknet_ints_not_words():
    import netcfg

    net = "[net]\nwidth=8\nheight=8\n[convolutional]\n"
    assert netcfg.parse(net + "batch_normalize=2\n").layers[0].section.batch_normalize is True
    with pytest.raises(CfgError) as exc:
        netcfg.parse(net + "batch_normalize=yes\n")
    assert exc.value.items[0].line == 5 and exc.value.items[0].key == "batch_normalize"
