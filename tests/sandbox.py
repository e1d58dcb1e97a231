"""A forked worker that runs fuzz cases one at a time under a memory limit (`RLIMIT_AS`, counted above
what the worker already maps) and a time limit (an alarm inside the case, and a kill from outside when
the case is stuck in C code). A case that hangs, crashes or escapes restarts the worker clean."""

from __future__ import annotations

import multiprocessing
import resource
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Runner = Callable[[Any], str]
#: Seconds a stuck case gets beyond its limit before the worker is killed from outside.
GRACE = 5.0
#: Held while a worker is forked. A process that forks from several threads holds it around anything
#: taking a lock a fork would copy held (an import, `torch.manual_seed`'s CUDA lazy-init lock): a
#: worker forked mid-import hung on the import lock.
FORK_LOCK = threading.Lock()


class CaseTimeout(BaseException):
    """Raised in the worker by the alarm; a BaseException so no `except Exception` in netcfg swallows it."""


@dataclass(frozen=True)
class Result:
    """How one case ended: an allowed outcome name, or `escaped`, `timeout`, `hang`, `crashed` with details."""

    outcome: str
    seconds: float
    peak_rss_mb: float
    error: str = ""

    @property
    def finding(self) -> bool:
        return self.outcome in ("escaped", "timeout", "hang", "crashed")


def _mapped_bytes() -> int:
    """The worker's current virtual size (VmSize), which `RLIMIT_AS` counts."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def _on_alarm(signum: int, frame: object) -> None:
    raise CaseTimeout("the case ran past its time limit")


def _run_one(runner: Runner, payload: Any, seconds: float) -> str:
    """The runner's outcome, with the alarm armed only while it runs."""
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return runner(payload)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _serve(conn, parent_end, runners: dict[str, Runner], memory: int, seconds: float) -> None:
    """The worker loop: limit memory once, then run each (kind, payload) received and send its Result."""
    parent_end.close()  # inherited by the fork: closed so the worker sees EOF when the parent closes its end
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (_mapped_bytes() + memory, hard))
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the campaign, not the case under way
    while True:
        try:
            kind, payload = conn.recv()
        except EOFError:
            return
        start = time.perf_counter()
        try:
            try:
                outcome, error = _run_one(runners[kind], payload, seconds), ""
            except CaseTimeout:
                outcome, error = "timeout", traceback.format_exc()
            except BaseException:
                outcome, error = "escaped", traceback.format_exc()
        except CaseTimeout:  # the alarm fired as the case ended, before it was disarmed
            outcome, error = "timeout", "the time limit passed as the case ended"
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        conn.send(Result(outcome, time.perf_counter() - start, peak, error))


class Sandbox:
    """Runs cases in a forked worker; `run` returns a Result and restarts the worker after a finding."""

    def __init__(self, runners: dict[str, Runner], memory: int = 2**31, seconds: float = 20.0, grace: float = GRACE):
        self.runners, self.memory, self.seconds, self.grace = runners, memory, seconds, grace
        self._start()

    def _start(self) -> None:
        context = multiprocessing.get_context("fork")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child, self._conn, self.runners, self.memory, self.seconds), daemon=True
        )
        with FORK_LOCK:
            self._process.start()
        child.close()

    def run(self, kind: str, payload: Any) -> Result:
        """One case under the limits; a worker stuck past the limit (plus GRACE) is killed: `hang`."""
        start = time.perf_counter()
        self._conn.send((kind, payload))
        try:
            if self._conn.poll(self.seconds + self.grace):
                result = self._conn.recv()
            else:
                result = Result("hang", time.perf_counter() - start, 0.0, f"no answer in {self.seconds + self.grace} s")
        except EOFError:
            self._process.join(1)
            code = self._process.exitcode
            result = Result("crashed", time.perf_counter() - start, 0.0, f"the worker died (exit code {code})")
        if result.finding:
            self.restart()
        return result

    def restart(self) -> None:
        self.close()
        self._start()

    def close(self) -> None:
        """Stop the worker (killed if it does not leave on its own)."""
        self._conn.close()
        self._process.join(2)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
