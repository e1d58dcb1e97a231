"""Files shipped with netcfg: the grammar and the bundled cfgs, installed or in a checkout."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """The `grammars` or `cfgs` folder: inside the installed package, else at the repo top."""
    for candidate in (_HERE / name, _HERE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"netcfg resource folder {name!r} is missing from the installation")


def bundled_cfgs() -> dict[str, Path]:
    """Bundled cfg files by file name (``yolov3.cfg``)."""
    return {p.name: p for p in sorted(resource_dir("cfgs").glob("*.cfg"))}
