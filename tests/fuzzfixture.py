"""The fuzz tests' sandbox (one forked worker per test module: 1 GiB above its own size, 20 s a case)
and the one assertion every fuzz case makes: it ended with an outcome its kind allows."""

from __future__ import annotations

from typing import Any

import pytest
from fuzzkit import ALLOWED, RUNNERS
from sandbox import Result, Sandbox

MEMORY = 2**30
SECONDS = 20.0


@pytest.fixture(scope="module")
def sandbox():
    box = Sandbox(RUNNERS, memory=MEMORY, seconds=SECONDS)
    yield box
    box.close()


def check(box: Sandbox, kind: str, payload: Any) -> Result:
    """Run one case in the sandbox; fail unless it ended valid, refused or with the kind's error type."""
    result = box.run(kind, payload)
    assert result.outcome in ALLOWED[kind], f"{result.outcome} for {payload!r:.400}\n{result.error[-3000:]}"
    return result
