"""The public entry points: parse a cfg into a validated spec, build it into a Network."""

from __future__ import annotations

import os
from pathlib import Path

from . import sections  # noqa: F401  (registers the built-in section types)
from .errors import CfgError, CfgItem, did_you_mean
from .network import Network, build_network
from .reader import read_sections
from .resources import bundled_cfgs
from .spec import Spec, build_spec
from .weights import load_darknet_weights

CfgSource = str | os.PathLike


def read_cfg(cfg: CfgSource) -> tuple[bytes | str, str]:
    """A cfg given as a path, a bundled name (`yolov3.cfg` or `yolov3`) or text → (content, file name)."""
    if isinstance(cfg, os.PathLike) or (isinstance(cfg, str) and "\n" not in cfg and "[" not in cfg):
        path = Path(cfg)
        if path.is_file():
            return path.read_bytes(), str(path)
        bundled = bundled_cfgs()
        name = path.name if path.suffix == ".cfg" else f"{path.name}.cfg"
        if str(cfg) in (name, path.stem) and name in bundled:
            return bundled[name].read_bytes(), name
        hint = did_you_mean(name, set(bundled))
        raise CfgError([CfgItem(f"no such cfg file or bundled cfg{hint}", str(cfg), 0, 0)])
    return cfg, "<cfg>"


def parse(cfg: CfgSource, **net_overrides) -> Spec:
    """Parse and validate a cfg without building modules. Keyword arguments replace `[net]` keys."""
    content, file = read_cfg(cfg)
    return build_spec(read_sections(content, file), file, net_overrides)


def build(cfg: CfgSource | Spec, weights: CfgSource | None = None, **net_overrides) -> Network:
    """Build a Network from a cfg path, bundled name or text; optionally load darknet weights (not
    under `torch.device("meta")`: WeightsError, as the file need not cover every tensor)."""
    spec = cfg if isinstance(cfg, Spec) else parse(cfg, **net_overrides)
    model = build_network(spec)
    if weights is not None:
        load_darknet_weights(model, weights)
    model.eval()
    return model
