"""The public entry points: parse a cfg into a validated spec, build it into a Network."""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch

from . import sections  # noqa: F401  (registers the built-in section types)
from .budget import DEFAULT_BUDGET, Budget, meta_modules
from .budget import check as check_budget
from .errors import suggestion_budget
from .files import CfgSource, read_cfg
from .loading import build_loaded
from .memory_format import kernels_channels_last
from .network import Network, build_network
from .reader import read_sections
from .spec import Spec, build_spec


def parse(cfg: CfgSource, *, strict: bool = False, include_dirs: Iterable[CfgSource] = (), **net_overrides) -> Spec:
    """Parse and validate a cfg without building modules. Keyword arguments replace `[net]` keys;
    `strict=True` refuses keys darknet ignores; `include_dirs` are further folders includes may read."""
    with _collector_paused(), suggestion_budget():
        source = read_cfg(cfg)
        return build_spec(read_sections(source.content, source.name), source, net_overrides, strict, include_dirs)


def build(
    cfg: CfgSource | Spec,
    weights: CfgSource | None = None,
    *,
    strict: bool = False,
    include_dirs: Iterable[CfgSource] = (),
    budget: Budget = DEFAULT_BUDGET,
    memory_format: torch.memory_format = torch.channels_last,
    **net_overrides,
) -> Network:
    """Build a Network from a cfg path, bundled name or text; optionally load darknet weights, read
    straight into the new tensors (not under `torch.device("meta")`: WeightsError, as the file need
    not cover every tensor). A network whose parameters or activations exceed `budget` is refused
    (CfgError) before anything is allocated. Kernels are channels_last (oneDNN's fastest layout;
    `model(x)` returns contiguous tensors all the same) unless `memory_format=torch.contiguous_format`."""
    if memory_format not in (torch.channels_last, torch.contiguous_format):
        raise ValueError(f"memory_format is torch.channels_last or torch.contiguous_format, not {memory_format}")
    channels_last = memory_format == torch.channels_last
    with _collector_paused():
        spec = cfg if isinstance(cfg, Spec) else parse(cfg, strict=strict, include_dirs=include_dirs, **net_overrides)
        if weights is None:
            check_budget(spec, budget)
            model = build_network(spec)
        else:
            skeleton = meta_modules(spec) if torch.get_default_device().type == "cpu" else None
            check_budget(spec, budget, skeleton)
            model = build_loaded(spec, weights, skeleton=skeleton, channels_last=channels_last)
        if channels_last:
            kernels_channels_last(model, fresh=True)
        model.eval()
    return model


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused (then restored): parsing and building make many
    objects that all stay alive, so collections there only rescan them (a quarter of a big build)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
