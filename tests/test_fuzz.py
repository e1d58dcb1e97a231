"""Mutated cfgs give a valid network or a located CfgError, never another exception: line-level mutations
of the bundled and shared cfgs (lines dropped, repeated, swapped; values replaced by extremes and junk;
section names and keys mangled). The CI profile is bounded; `NETCFG_HYPOTHESIS_PROFILE=long` runs more."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import netcfg
from netcfg.resources import bundled_cfgs

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "darknet-cfg"
SOURCES = sorted(bundled_cfgs().values()) + (sorted(SHARED.glob("*.cfg")) if SHARED.is_dir() else [])
TEXTS = [path.read_text(errors="replace") for path in SOURCES]
JUNK = ["", "-1", "0", "2147483648", "-2147483649", "1e999", "nan", "inf", "0x10", "1,,2", "a", "=", "[", "]", "\r"]


@st.composite
def mutated(draw) -> str:
    lines = draw(st.sampled_from(TEXTS)).split("\n")
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["drop", "repeat", "swap", "value", "key", "header"]))
        if kind == "drop":
            del lines[i]
        elif kind == "repeat":
            lines.insert(i, lines[i])
        elif kind == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "value" and "=" in lines[i]:
            lines[i] = lines[i].split("=")[0] + "=" + draw(st.sampled_from(JUNK))
        elif kind == "key" and "=" in lines[i]:
            key, _, value = lines[i].partition("=")
            lines[i] = draw(st.text("abcxyz_", min_size=1, max_size=3)) + key + "=" + value
        elif kind == "header":
            lines.insert(
                i, "[" + draw(st.sampled_from(["route", "shortcut", "yolo", "convolutional", "zzz", ""])) + "]"
            )
        if not lines:
            lines = [""]
    return "\n".join(lines)


@settings(max_examples=4 * settings.default.max_examples)
@given(mutated())
def test_mutated_cfgs_parse_or_give_located_errors(text):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", netcfg.CfgWarning)
        try:
            netcfg.parse(text, width=64, height=64)
        except netcfg.CfgError as exc:
            assert exc.items and all(item.message for item in exc.items)
            assert str(exc)


@pytest.mark.parametrize("text", [TEXTS[0]])
def test_the_corpus_parses_unmutated(text):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", netcfg.CfgWarning)
        assert netcfg.parse(text).layers
