"""The long fuzzing campaign, run by hand (never by pytest): mutated cfgs parsed, built and run, value
extremes of every schema key, resource bombs, mutated weights files and CLI runs, each case in a forked
worker under a time and a memory limit. Prints a table of figures; every case that ends otherwise than
valid / CfgError / WeightsError is saved with its traceback to the findings folder as a reproducer.

    PYTHONPATH=$PWD nice python fuzz/campaign.py --workers 1          # the full campaign
    PYTHONPATH=$PWD python fuzz/campaign.py --parse 2000 --build 200  # a quick look
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import queue
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import fuzzkit  # noqa: E402
import fuzzweights  # noqa: E402
from sandbox import FORK_LOCK, Result, Sandbox  # noqa: E402

Case = tuple[str, str, Any]  # (kind, case id, payload)
RUNNERS = fuzzkit.RUNNERS
CLI_WIDTHS = ["32", "0", "-1", "100000", str(2**63), "abc", "1e3"]


def _rng(seed: int, kind: str, index: int) -> random.Random:
    return random.Random(f"{seed}/{kind}/{index}")


def value_cases() -> Iterator[str]:
    """Every schema key of every section with an example, set to each of its kind's extremes."""
    for section, key, kind in fuzzkit.schema_keys():
        for value in fuzzkit.extremes(kind):
            yield fuzzkit.with_value(fuzzkit.EXAMPLES[section], section, key, value)


def bomb_cases(count: int, seed: int, folder: Path) -> Iterator[Any]:
    """Generated bombs, then `[include]` fan-outs of 8**2 ... 8**6 layers."""
    for i in range(count):
        yield fuzzkit.bomb_case(_rng(seed, "bombs", i))
    for depth in range(2, 7):
        (folder / f"fan{depth}").mkdir()
        yield str(fuzzkit.include_bomb(folder / f"fan{depth}", depth))


def cli_case(rng: random.Random, folder: Path, index: int) -> list[str]:
    """An argv: check or summary of a mutated cfg (with odd sizes), or of a path that is not a cfg."""
    cfg = folder / f"cli{index}.cfg"
    cfg.write_text(fuzzkit.build_case(rng))
    odd = ["/nonexistent/x.cfg", str(folder), "/dev/null", "x" * 300, "", "yolov3-tiny"]
    target = str(cfg) if rng.random() < 0.8 else rng.choice(odd)
    command = rng.choice([["check"], ["check", "--strict"], ["summary"], ["summary", "--width"], ["bogus"], []])
    if command[-1:] == ["--width"]:
        return ["summary", target, "--width", rng.choice(CLI_WIDTHS)]
    return [*command, target] if command else [target]


def streams(args: argparse.Namespace, folder: Path) -> dict[str, tuple[int, Iterator[Any]]]:
    """Each kind's case count and payloads, each drawn from its own seeded generator so any id reproduces."""
    seed, values = args.seed, list(value_cases())[: args.values if args.values >= 0 else None]
    return {
        "parse": (args.parse, (fuzzkit.parse_case(_rng(seed, "parse", i)) for i in range(args.parse))),
        "build": (args.build, (fuzzkit.build_case(_rng(seed, "build", i)) for i in range(args.build))),
        "values": (len(values), iter(values)),
        "bombs": (args.bombs + 5, bomb_cases(args.bombs, seed, folder)),
        "weights": (args.weights, (fuzzweights.mutated_file(_rng(seed, "weights", i)) for i in range(args.weights))),
        "cli": (args.cli, (cli_case(_rng(seed, "cli", i), folder, i) for i in range(args.cli))),
    }


def cases(args: argparse.Namespace, folder: Path) -> Iterator[Case]:
    """All cases, the kinds interleaved in proportion to their counts (so a campaign stopped early with
    Ctrl-C has covered every kind alike)."""
    pending = {kind: stream for kind, stream in streams(args, folder).items() if stream[0] > 0}
    done = Counter()
    while pending:
        kind = min(pending, key=lambda k: done[k] / pending[k][0])
        payload = next(pending[kind][1], None)
        if payload is None:
            del pending[kind]
            continue
        yield kind, f"{kind}-{done[kind]}", payload
        done[kind] += 1


@dataclass
class Figures:
    """Per kind: cases, outcomes, time, the slowest case, the worker's peak memory, the findings."""

    cases: Counter = field(default_factory=Counter)
    outcomes: dict[str, Counter] = field(default_factory=dict)
    seconds: Counter = field(default_factory=Counter)
    slowest: dict[str, tuple[float, str]] = field(default_factory=dict)
    peak_mb: dict[str, float] = field(default_factory=dict)
    findings: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, case_id: str, result: Result) -> None:
        with self.lock:
            self.cases[kind] += 1
            self.outcomes.setdefault(kind, Counter())[result.outcome] += 1
            self.seconds[kind] += result.seconds
            if result.seconds > self.slowest.get(kind, (-1.0, ""))[0]:
                self.slowest[kind] = (result.seconds, case_id)
            self.peak_mb[kind] = max(self.peak_mb.get(kind, 0.0), result.peak_rss_mb)

    def table(self) -> str:
        rows = [
            "| kind | cases | outcomes | mean ms | slowest case | worker peak RSS |",
            "|---|---:|---|---:|---|---:|",
        ]
        for kind in RUNNERS:
            if not self.cases[kind]:
                continue
            outcomes = ", ".join(f"{name} {n:,d}" for name, n in self.outcomes[kind].most_common())
            slow, slow_id = self.slowest[kind]
            mean = 1000 * self.seconds[kind] / self.cases[kind]
            rows.append(
                f"| {kind} | {self.cases[kind]:,d} | {outcomes} | {mean:.1f} | {slow:.2f} s ({slow_id}) "
                f"| {self.peak_mb[kind]:.0f} MB |"
            )
        return "\n".join(rows)


def save_reproducer(out: Path, kind: str, case_id: str, payload: Any, result: Result) -> Path:
    """The case's input and what happened, in `out/<case id>/`."""
    folder = out / case_id
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "weights":
        (folder / "case.weights").write_bytes(payload[1])
        (folder / "kind.txt").write_text(payload[0] + "\n")
    elif kind == "cli":
        (folder / "argv.json").write_text(json.dumps(payload) + "\n")
        for arg in payload:
            if arg.endswith(".cfg") and Path(arg).is_file():
                (folder / Path(arg).name).write_bytes(Path(arg).read_bytes())
    elif kind == "bombs" and not str(payload).startswith("[net]"):
        for path in Path(payload).parent.iterdir():
            (folder / path.name).write_bytes(path.read_bytes())
    else:
        (folder / "case.cfg").write_text(payload)
    (folder / "result.txt").write_text(
        f"{kind} {case_id}: {result.outcome} after {result.seconds:.2f} s\n{result.error}"
    )
    return folder


def work(
    feed: queue.Queue, figures: Figures, out: Path, limits: tuple[int, float], progress: Callable[[], None]
) -> None:
    """One worker thread: a sandbox running cases from `feed` until it gets None."""
    sandbox = Sandbox(RUNNERS, memory=limits[0], seconds=limits[1])
    try:
        while (item := feed.get()) is not None:
            kind, case_id, payload = item
            result = sandbox.run(kind, payload)
            figures.add(kind, case_id, result)
            if result.finding:
                where = save_reproducer(out, kind, case_id, payload, result)
                with figures.lock:
                    figures.findings.append(
                        (case_id, f"{result.outcome}: {result.error.strip().splitlines()[-1:]} → {where}")
                    )
            progress()
    finally:
        sandbox.close()


def _made_between_forks(made: Iterator[Any]) -> Iterator[Any]:
    """`made`'s cases, each made under FORK_LOCK: the worker threads fork sandboxes while this thread
    makes cases, which imports and seeds."""
    while True:
        with FORK_LOCK:
            case = next(made, None)
        if case is None:
            return
        yield case


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parse", type=int, default=100_000, help="mutated cfgs parsed")
    parser.add_argument(
        "--build", type=int, default=10_000, help="mutated examples built and run (plus every value extreme)"
    )
    parser.add_argument(
        "--bombs", type=int, default=300, help="generated resource bombs (plus five [include] fan-outs)"
    )
    parser.add_argument("--values", type=int, default=-1, help="value extremes built and run (default: all)")
    parser.add_argument("--weights", type=int, default=3_000, help="mutated weights files loaded")
    parser.add_argument("--cli", type=int, default=300, help="CLI runs")
    parser.add_argument("--workers", type=int, default=1, help="parallel worker processes")
    parser.add_argument("--seconds", type=float, default=20.0, help="time limit per case")
    parser.add_argument("--memory-mb", type=int, default=2048, help="memory limit per case, above the worker's own")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("fuzz/findings"), help="folder for reproducers")
    args = parser.parse_args()
    figures, start, done = Figures(), time.perf_counter(), itertools.count(1)
    total = args.parse + args.build + args.bombs + args.weights + args.cli

    def progress() -> None:
        n = next(done)
        if n % 2000 == 0:
            print(f"  {n:,d} cases, {time.perf_counter() - start:.0f} s, {len(figures.findings)} findings", flush=True)

    with tempfile.TemporaryDirectory() as scratch:
        feed: queue.Queue = queue.Queue(maxsize=64)
        limits = (args.memory_mb * 2**20, args.seconds)
        threads = [
            threading.Thread(target=work, args=(feed, figures, args.out, limits, progress)) for _ in range(args.workers)
        ]
        for thread in threads:
            thread.start()
        try:
            for case in _made_between_forks(cases(args, Path(scratch))):
                feed.put(case)
        except KeyboardInterrupt:
            print("interrupted: finishing the cases under way", flush=True)
        for _ in threads:
            feed.put(None)
        for thread in threads:
            thread.join()
    elapsed = time.perf_counter() - start
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"\nnetcfg fuzzing campaign, {when}, {platform.machine()} {platform.processor() or ''}, "
        f"{args.workers} worker(s), seed {args.seed}: {sum(figures.cases.values()):,d} cases "
        f"(~{total:,d} asked plus the value extremes) in {elapsed / 60:.1f} min; limits {args.seconds:g} s "
        f"and {args.memory_mb} MB per case\n"
    )
    print(figures.table())
    print(f"\nfindings: {len(figures.findings)}" + (f" (reproducers in {args.out}/)" if figures.findings else ""))
    for case_id, line in figures.findings:
        print(f"  {case_id}: {line}")
    return 1 if figures.findings else 0


if __name__ == "__main__":
    sys.exit(main())
