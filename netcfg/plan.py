"""When each layer output can be freed: shared by `Network.forward` and the `del`s of generated code."""

from __future__ import annotations

from collections.abc import Sequence

from .spec import NETWORK_INPUT


def release_plan(sources: Sequence[Sequence[int]], keep: set[int]) -> list[tuple[int, ...]]:
    """For each step (layer), the outputs no later step reads: free them after it. Outputs in `keep`
    and the network input (the caller holds it anyway) are never freed."""
    last_reader: dict[int, int] = {}
    for step, srcs in enumerate(sources):
        for s in srcs:
            last_reader[s] = step
    release: list[list[int]] = [[] for _ in sources]
    for produced, step in last_reader.items():
        if produced != NETWORK_INPUT and produced not in keep:
            release[step].append(produced)
    return [tuple(r) for r in release]
