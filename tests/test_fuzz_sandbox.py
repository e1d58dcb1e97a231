"""The fuzz sandbox can fail a case: an allocation over its memory limit, a case past its time limit, one
stuck where the alarm cannot reach it, and a worker that dies are all reported, and the worker restarts."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
from fuzzfixture import check, sandbox  # noqa: F401  (the fixture)
from sandbox import Sandbox


def _blocked(seconds: float) -> str:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(seconds)
    return "done"


RUNNERS = {
    "allocate": lambda n: str(np.ones(n, dtype=np.uint8).sum()),
    "sleep": lambda s: str(time.sleep(s)),
    "blocked": _blocked,
    "die": lambda code: os._exit(code),
}


def test_limits_and_deaths_are_reported_and_the_worker_restarts():
    box = Sandbox(RUNNERS, memory=2**28, seconds=0.5, grace=0.5)
    try:
        assert box.run("allocate", 2**20).outcome == "1048576"
        over = box.run("allocate", 2**30)
        assert over.outcome == "escaped" and "MemoryError" in over.error
        assert box.run("sleep", 5).outcome == "timeout"
        assert box.run("blocked", 5).outcome == "hang"
        assert box.run("die", 3).outcome == "crashed"
        assert box.run("allocate", 10).outcome == "10"
    finally:
        box.close()


def test_a_network_the_budget_allows_but_the_limit_does_not_escapes(sandbox):  # noqa: F811
    """3.4 GB of connected weights is within the default budget: the 1 GiB limit makes its build fail, so a
    bomb the budget missed could not pass the bomb tests by allocating."""
    result = sandbox.run("bombs", "[net]\nwidth=32\nheight=32\nchannels=8\n[connected]\noutput=100000\n")
    assert result.outcome == "escaped" and "memory" in result.error.lower()
