"""Where cfg text comes from: the file or bundled name a user gives, and the files `[include]` may read.

Only regular `.cfg`-sized files are read (never a FIFO, a device or `/proc` entry), and every OS error
becomes a located CfgError. An include resolves relative to the including file and may read only inside
the include roots: the top-level cfg's folder (the working directory for cfg text), the bundled cfgs and
the folders the caller names (`include_dirs=`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import CfgError, CfgItem, did_you_mean
from .reader import MAX_CFG_BYTES
from .resources import bundled_cfgs, resource_dir
from .section import SpecError

CfgSource = str | os.PathLike
#: Kernel-made folders whose "regular" files are not files: never read.
SPECIAL_FOLDERS = (("proc",), ("sys",), ("dev",))


@dataclass(frozen=True)
class CfgText:
    """A cfg's content, the name messages show for it, and the real file behind it (None for text)."""

    content: bytes | str
    name: str
    path: Path | None = None


def read_cfg(cfg: CfgSource) -> CfgText:
    """A path, a bundled name (`yolov3.cfg` or `yolov3`) or cfg text (a string with a line break)."""
    if isinstance(cfg, str) and "\n" in cfg:
        return CfgText(cfg, "<cfg>")
    path = Path(cfg)
    if _exists(path):
        return CfgText(read_regular(path, str(path)), str(path), path.resolve())
    bundled = bundled_cfgs()
    name = path.name if path.suffix == ".cfg" else f"{path.name}.cfg"
    if str(cfg) in (name, path.stem) and name in bundled:
        return CfgText(bundled[name].read_bytes(), name, bundled[name].resolve())
    hint = did_you_mean(name, set(bundled))
    raise CfgError([CfgItem(f"no such cfg file or bundled cfg{hint}", str(cfg)[:200], 0, 0)])


def read_regular(path: Path, shown: str) -> bytes:
    """The bytes of a regular file of at most MAX_CFG_BYTES; a CfgError naming `shown` otherwise."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode) or path.resolve().parts[1:2] in SPECIAL_FOLDERS:
            raise CfgError([CfgItem("not a regular file (a FIFO, device or folder?)", shown, 0, 0)])
        if info.st_size > MAX_CFG_BYTES:
            raise CfgError([CfgItem(f"{info.st_size} bytes is too large for a cfg file", shown, 0, 0)])
        with path.open("rb") as handle:
            return handle.read(MAX_CFG_BYTES + 1)
    except OSError as exc:
        raise CfgError([CfgItem(f"cannot read: {exc.strerror or exc}", shown, 0, 0)]) from None


def _exists(path: Path) -> bool:
    """Whether something is at `path`; names too long for the OS simply do not exist."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


@dataclass(frozen=True)
class IncludeRoots:
    """The folders `[include] file=` may read from."""

    folders: tuple[Path, ...]

    @classmethod
    def around(cls, top: CfgText, include_dirs: Iterable[CfgSource] = ()) -> IncludeRoots:
        """The top-level cfg's folder (or the working directory), the bundled cfgs and `include_dirs`."""
        own = top.path.parent if top.path is not None else Path.cwd()
        folders = (own, resource_dir("cfgs"), *(Path(d) for d in include_dirs))
        return cls(tuple(folder.resolve() for folder in folders))

    def allows(self, path: Path) -> bool:
        return any(path.is_relative_to(folder) for folder in self.folders)

    def locate(self, target: str, including: str) -> CfgText:
        """An include's `file=`: relative to the including file, else a bundled cfg. A bundled cfg only
        includes bundled cfgs. Raises SpecError (located at `file`) when it cannot be read."""
        bundled = bundled_cfgs()
        including_path = Path(including)
        if _exists(including_path) or including not in bundled:
            base = including_path.parent if _exists(including_path) else Path.cwd()
            candidate = base / target
            if _exists(candidate):
                return self._read(candidate, target)
        name = target if target.endswith(".cfg") else f"{target}.cfg"
        if name in bundled and Path(target).name == target:
            return CfgText(bundled[name].read_bytes(), name, bundled[name].resolve())
        shown = target[:200]
        raise SpecError(f"no such cfg file or bundled cfg {shown!r}{did_you_mean(name, set(bundled))}", "file")

    def _read(self, candidate: Path, target: str) -> CfgText:
        real = candidate.resolve()
        if not self.allows(real):
            raise SpecError(
                f"{target!r} is outside the folders an include may read (the cfg's own folder, the bundled "
                "cfgs and include_dirs=)",
                "file",
            )
        if real.suffix != ".cfg":
            raise SpecError(f"{target!r} is not a .cfg file; only .cfg files can be included", "file")
        try:
            return CfgText(read_regular(real, str(candidate)), str(candidate), real)
        except CfgError as exc:
            raise SpecError(f"{target!r}: {exc.items[0].message}", "file") from None
