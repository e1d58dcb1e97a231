"""Resource bombs (huge filters, inputs, connected outputs, windows, repeat= and [include] fan-outs) are
refused with a located CfgError before anything is allocated: each is built in a sandbox whose memory
limit (1 GiB above its own size) is far below what the bomb asks, so an allocation would escape."""

from __future__ import annotations

import pytest
from fuzzfixture import check, sandbox  # noqa: F401  (the fixture)
from fuzzkit import bomb_case, include_bomb
from hypothesis import given, settings
from hypothesis import strategies as st

NET = "[net]\nwidth={size}\nheight={size}\nchannels=3\n"
ISSUE = [
    (256, "[convolutional]\nfilters=10000000\nsize=3\n"),
    (10**6, "[convolutional]\nfilters=16\nsize=3\npad=1\n"),
    (256, "[connected]\noutput=1000000\n"),
    (256, "[maxpool]\nsize=10000\nstride=1\n"),
    (256, "[local_avgpool]\nsize=10000\nstride=1\n"),
    (256, "[convolutional]\nfilters=1\nsize=10000\npad=1\n"),
    (256, "[convolutional]\nfilters=64\nsize=3\npad=1\nrepeat=1000000\n"),
    (64, "[convolutional]\nfilters=8\nsize=3\npad=1\ndilation=1000000\n"),
]


@pytest.mark.parametrize(("size", "section"), ISSUE, ids=lambda v: str(v).split("\n")[0])
def test_the_bombs_the_issue_names_are_refused(sandbox, size, section):  # noqa: F811
    check(sandbox, "bombs", NET.format(size=size) + section)


@settings(max_examples=settings.default.max_examples // 2)
@given(st.randoms(use_true_random=False))
def test_generated_bombs_are_refused(sandbox, rng):  # noqa: F811
    check(sandbox, "bombs", bomb_case(rng))


@pytest.mark.parametrize("depth", [2, 4])
def test_include_fan_outs_are_refused(sandbox, tmp_path, depth):  # noqa: F811
    """8**depth convolutions of 1024 filters on 416×416, reached through includes of includes."""
    check(sandbox, "bombs", str(include_bomb(tmp_path, depth)))
