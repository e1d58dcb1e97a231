"""The reader's two grammar rules: the fast `lines` rule (a header is one token) and the full `start` rule
(a header is `[` and the rest), which reads what `lines` refuses and locates syntax errors."""

import pytest

from netcfg.reader import _parser, _sections, decode, read_sections
from netcfg.resources import bundled_cfgs

QUIRKS = "[net]\nwidth = 416 # c\n\n  [ conv\t]  ; c\n\n\nlayers = -1, 61\n\tsize=3   \n"


@pytest.mark.parametrize("text", [QUIRKS, *(p.read_text() for p in sorted(bundled_cfgs().values()))])
def test_both_rules_read_a_cfg_alike(text):
    parser = _parser()
    fast, full = (_sections(parser.parse(decode(text, "a.cfg"), start=rule), "a.cfg") for rule in ("lines", "start"))
    assert fast == full
    assert {tok.type for tok in parser.parse(text, start="lines")} <= {"HEADER", "OPTION"}


def test_a_header_broken_after_its_bracket_is_read_by_the_full_rule():
    net, conv = read_sections("[\nnet]\nwidth=8\n[ # c\n  conv ]\nsize = 3\n")
    assert (net.name, net.line, net.column, net.options["width"].line) == ("net", 2, 0, 3)
    assert (conv.name, conv.line, conv.column) == ("conv", 5, 2)
    assert tuple(conv.options["size"]) == ("size", "3", 6, 1)
