"""Mutated cfgs give a valid network or a located CfgError, never another exception, a hang or unbounded
memory: line- and character-level mutations of the bundled, shared and example cfgs, parsed; mutated
examples built and run; CLI runs on them never print a traceback. Each case runs in a forked sandbox under
a time and memory limit (tests/sandbox.py). The CI profile is bounded; `NETCFG_HYPOTHESIS_PROFILE=long`
runs more, and fuzz/campaign.py far more."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from fuzzfixture import check, sandbox  # noqa: F401  (the fixture)
from fuzzkit import build_case, mutate_bytes, mutate_lines, parse_case
from hypothesis import given, settings
from hypothesis import strategies as st

from netcfg.resources import bundled_cfgs

BUNDLED = sorted(bundled_cfgs().values())


@settings(max_examples=2 * settings.default.max_examples)
@given(st.randoms(use_true_random=False))
def test_mutated_cfgs_parse_or_give_located_errors(sandbox, rng):  # noqa: F811
    check(sandbox, "parse", parse_case(rng))


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.name)
def test_every_bundled_cfg_survives_its_own_mutations(sandbox, path):  # noqa: F811
    rng = random.Random(path.name)
    text = path.read_text()
    check(sandbox, "parse", mutate_lines(rng, text))
    check(sandbox, "parse", mutate_bytes(rng, text))


def test_shared_cfgs_survive_their_mutations(sandbox, shared_cfgs: Path):  # noqa: F811
    for path in sorted(shared_cfgs.glob("*.cfg"))[::3]:  # a third of them each run; the campaign takes all
        rng = random.Random(path.name)
        check(sandbox, "parse", mutate_lines(rng, path.read_text(errors="replace")))


@given(st.randoms(use_true_random=False))
def test_mutated_examples_build_and_run_or_give_located_errors(sandbox, rng):  # noqa: F811
    check(sandbox, "build", build_case(rng))


@settings(max_examples=settings.default.max_examples // 2)
@given(st.randoms(use_true_random=False), st.sampled_from(["check", "summary"]))
def test_the_cli_never_prints_a_traceback(sandbox, tmp_path_factory, rng, command):  # noqa: F811
    cfg = tmp_path_factory.mktemp("cli") / "case.cfg"
    cfg.write_text(build_case(rng))
    argv = [command, str(cfg)] + (["--width", rng.choice(["100000", str(2**63), "-1", "32"])] * (command == "summary"))
    check(sandbox, "cli", argv)


def test_a_case_that_escapes_is_reported_by_the_sandbox(sandbox):  # noqa: F811
    """The harness can fail: a cfg the runner is told to build but that only parses is not 'refused'."""
    result = sandbox.run("bombs", "[net]\nwidth=8\nheight=8\n[convolutional]\nfilters=2\nsize=1\n")
    assert result.outcome == "escaped" and "a resource bomb was built" in result.error
