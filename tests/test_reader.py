"""The reader's two grammar rules: the fast `lines` rule (a header is one token) and the full `start` rule
(a header is `[` and the rest), which reads what `lines` refuses and locates syntax errors."""

import lark
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netcfg import reader
from netcfg.errors import CfgError, CfgItem
from netcfg.reader import _parser, _sections, decode, read_sections
from netcfg.resources import bundled_cfgs, resource_dir

QUIRKS = "[net]\nwidth = 416 # c\n\n  [ conv\t]  ; c\n\n\nlayers = -1, 61\n\tsize=3   \n"


@pytest.mark.parametrize("text", [QUIRKS, *(p.read_text() for p in sorted(bundled_cfgs().values()))])
def test_both_rules_read_a_cfg_alike(text):
    parser = _parser()
    fast, full = (_sections(parser.parse(decode(text, "a.cfg"), start=rule), "a.cfg") for rule in ("lines", "start"))
    assert fast == full
    assert {tok.type for tok in parser.parse(text, start="lines")} <= {"SECTION", "OPTION"}


BLANK = st.sampled_from(["", " ", "\t", " \f\v "])
WORD = st.sampled_from(["net", "conv", "k", "k y", "1,2", "-0.5", "a=b", "x[1]", "é", "\xa0"])
COMMENT = st.sampled_from(["", "#", "# c", ";c", " #x=1"])
#: One cfg line: a header, an option, a comment, a blank line, or (rarely) any mix of the characters
#: the rules treat specially, so near misses are drawn as well as good lines.
LINE = st.one_of(
    st.tuples(BLANK, st.just("["), BLANK, WORD, BLANK, st.just("]"), BLANK, COMMENT),
    st.tuples(BLANK, WORD, BLANK, st.just("="), BLANK, WORD, BLANK, COMMENT),
    st.tuples(BLANK, COMMENT),
    st.tuples(st.lists(st.sampled_from(["[", "]", "=", "#", ";", "\r", " ", "k"]), max_size=5).map("".join)),
).map("".join)


@given(st.lists(LINE, max_size=12).map("\n".join))
def test_both_rules_read_any_text_alike(text):
    """The fast rule (a token per section) is the full rule (a token per line) read faster: on any text
    both give the same sections, keys, values, lines and columns, or the fast one refuses it."""

    def read(rule: str) -> list | list[CfgItem]:
        try:
            return _sections(_parser().parse(text, start=rule), "a.cfg")
        except CfgError as exc:
            return exc.items

    try:
        fast = read("lines")
    except lark.UnexpectedInput:
        return  # read by the full rule instead
    assert fast == read("start")


def test_a_header_broken_after_its_bracket_is_read_by_the_full_rule():
    net, conv = read_sections("[\nnet]\nwidth=8\n[ # c\n  conv ]\nsize = 3\n")
    assert (net.name, net.line, net.column, net.options["width"].line) == ("net", 2, 0, 3)
    assert (conv.name, conv.line, conv.column) == ("conv", 5, 2)
    assert tuple(conv.options["size"]) == ("size", "3", 6, 1)


def _grammar() -> str:
    return (resource_dir("grammars") / "darknet.lark").read_text()


def test_the_shipped_parser_serialisation_is_of_this_grammar_and_reads_as_the_compiled_parser():
    shipped = (resource_dir("grammars") / reader.SERIALISED).read_bytes()
    digest, _, version = shipped.split(b"\n", 1)[0].decode().partition(" lark ")
    assert digest == reader._stamp(_grammar()).decode().split()[0], "grammar changed: run netcfg.reader.save_parser()"
    loaded = reader._load_serialised(resource_dir("grammars") / reader.SERIALISED, reader._stamp(_grammar()))
    if version != lark.__version__:
        assert loaded is None  # made by another lark: compiled instead
        pytest.skip(f"the serialisation is of lark {version}, this is lark {lark.__version__}")
    compiled = reader._compile(_grammar())
    for text in [QUIRKS, "[\nnet]\nwidth=8\n", *(p.read_text() for p in sorted(bundled_cfgs().values()))]:
        for rule in ("lines", "start"):
            assert _tokens(loaded, text, rule) == _tokens(compiled, text, rule)


def _tokens(parser: lark.Lark, text: str, rule: str) -> list[tuple] | str:
    """What `parser` reads of `text` by `rule`: its tokens, or where it stopped."""
    try:
        return [(t.type, t.value, t.line, t.column) for t in parser.parse(text, start=rule)]
    except lark.UnexpectedInput as exc:
        return f"{type(exc).__name__} at {exc.line}:{exc.column}"


def test_a_stale_or_broken_serialisation_is_not_loaded(tmp_path):
    stamp = reader._stamp(_grammar())
    path = tmp_path / reader.SERIALISED
    assert reader._load_serialised(path, stamp) is None  # missing
    good = (resource_dir("grammars") / reader.SERIALISED).read_bytes()[len(stamp) :]
    for data in (reader._stamp(_grammar() + "\n") + good, stamp + b"not a pickle"):
        path.write_bytes(data)
        assert reader._load_serialised(path, stamp) is None
