"""A cfg of thousands of junk keys or repeated keys costs bounded work: suggestions stop after a
budget of comparisons per parse, and at most MAX_WARNINGS CfgWarnings are issued, then one summary."""

from __future__ import annotations

import difflib
import warnings

import pytest

import netcfg
from netcfg.errors import MAX_WARNINGS, SUGGESTION_BUDGET, CfgError, CfgWarning

HEAD = "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=4\nsize=1\n"


def _parse(text: str, **kwargs) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        netcfg.parse(text, **kwargs)
    return [str(w.message) for w in caught if issubclass(w.category, CfgWarning)]


def test_junk_keys_stop_getting_suggestions_and_warnings_after_the_bounds(monkeypatch):
    calls = []
    real = difflib.get_close_matches
    monkeypatch.setattr(difflib, "get_close_matches", lambda *a, **k: calls.append(len(a[1])) or real(*a, **k))
    keys = 3 * SUGGESTION_BUDGET // 40  # more comparisons than the budget: [convolutional] has ~40 keys
    shown = _parse(HEAD + "".join(f"zz{i}=1\n" for i in range(keys)))
    assert sum(calls) <= SUGGESTION_BUDGET + max(calls) and len(calls) < keys
    assert len(shown) == MAX_WARNINGS + 1
    assert shown[-1].endswith(f"{keys - MAX_WARNINGS} more warnings like these are not shown")


def test_a_near_miss_within_the_budget_is_still_an_error():
    with pytest.raises(CfgError, match="did you mean 'stride'"):
        _parse(HEAD + "zz=1\nstrde=2\n")


def test_repeated_keys_warn_up_to_the_bound_then_once_more():
    shown = _parse(HEAD + "size=1\n" * (MAX_WARNINGS + 50))
    repeats = [m for m in shown if "repeat" in m]
    assert len(repeats) == MAX_WARNINGS + 1
    assert repeats[-1].endswith("50 more repeated keys are not shown; their first values are used")


def test_the_budget_is_per_parse():
    junk = HEAD + "".join(f"zz{i}=1\n" for i in range(3 * SUGGESTION_BUDGET // 40))
    _parse(junk)
    with pytest.raises(CfgError, match="did you mean 'stride'"):
        _parse(HEAD + "strde=2\n")


def test_repeat_copies_of_a_section_do_not_inflate_the_count_of_unshown_warnings():
    junk = "".join(f"zz{i}=1\n" for i in range(MAX_WARNINGS + 30))
    shown = _parse(HEAD + "repeat=3\n" + junk)
    assert len(shown) == MAX_WARNINGS + 1
    assert shown[-1].endswith("30 more warnings like these are not shown")
