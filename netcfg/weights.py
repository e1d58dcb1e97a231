"""Darknet `.weights` files: read into a Network and write back, byte for byte.

A file is a header (int32 major, minor, revision, then `seen` as uint64 when major·10+minor ≥ 2, else
uint32, as AlexeyAB's darknet reads it) followed by float32 tensors, layer after layer, in the order each
layer module's `darknet_tensors()` lists them (conv: bias, [bn scale, mean, var], weights; connected:
bias, weights, [bn scale, mean, var]; shortcut: weights). Each tensor is stored flattened row-major,
except that a connected layer's weight matrix is stored transposed when the header's major or minor
exceeds 1000, and a convolution's when its section sets `flipped=1` (as darknet's loader does).

Loading checks the whole file before copying anything: on any error the model is untouched. The
file's size is checked against the network before its body is read (so memory is bounded by the
model) and only regular files are opened; NaN, infinite values and negative variances are refused
unless the caller allows them.
A network on the meta device is refused (call `to_empty` first): a file need not cover every tensor.
The training keys `dontload` and `dontloadscales` are not honoured (every layer is read).
"""

from __future__ import annotations

import logging
import math
import os
import stat
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .errors import WeightsError
from .network import Network

logger = logging.getLogger("netcfg")

FLOAT = 4
#: The version darknet (AlexeyAB, version.h) writes, used when the model has no loaded header.
DARKNET_VERSION = (0, 2, 5)


class PartialWeightsWarning(UserWarning):
    """A `.weights` file covered only the first layers of the network (like `darknet53.conv.74`)."""


@dataclass(frozen=True)
class DarknetHeader:
    """The header of a `.weights` file, kept on the model so saving writes it back unchanged."""

    major: int
    minor: int
    revision: int
    seen: int = 0

    @property
    def seen_is_64bit(self) -> bool:
        return self.major * 10 + self.minor >= 2

    @property
    def transpose(self) -> bool:
        """Old files store connected weight matrices transposed, flagged by a version above 1000."""
        return self.major > 1000 or self.minor > 1000

    @property
    def size(self) -> int:
        return 12 + (8 if self.seen_is_64bit else 4)

    def to_bytes(self) -> bytes:
        seen = struct.pack("<Q" if self.seen_is_64bit else "<I", self.seen)
        return struct.pack("<iii", self.major, self.minor, self.revision) + seen

    @classmethod
    def from_bytes(cls, data: bytes | bytearray, file: str) -> DarknetHeader:
        """Parse a header; WeightsError when the file is too short or the numbers are not a version."""
        if len(data) < 12:
            raise WeightsError(f"{file}: {len(data)} bytes is too short for a darknet header (needs 16 or 20)")
        major, minor, revision = struct.unpack_from("<iii", data)
        if min(major, minor, revision) < 0 or max(major, minor) >= 1_000_000:
            raise WeightsError(
                f"{file}: not a darknet .weights file: the header's version {major}.{minor}.{revision} is implausible"
            )
        header = cls(major, minor, revision)
        if len(data) < header.size:
            raise WeightsError(
                f"{file}: header of version {major}.{minor}.{revision} needs {header.size} bytes, "
                f"the file has {len(data)}"
            )
        (seen,) = struct.unpack_from("<Q" if header.seen_is_64bit else "<I", data, 12)
        return cls(major, minor, revision, seen)


@dataclass(frozen=True)
class LayerTensors:
    """One layer's place in the file: its tensors in file order, which are stored transposed,
    and whether it owns parameters a darknet file cannot describe."""

    index: int
    section: str
    tensors: tuple[torch.Tensor, ...]
    names: tuple[str, ...]
    transposed: tuple[bool, ...]
    opaque: bool = False

    @property
    def floats(self) -> int:
        return sum(t.numel() for t in self.tensors)

    def describe(self) -> str:
        return ", ".join(f"{n} {t.numel()}" for n, t in zip(self.names, self.tensors))

    @property
    def label(self) -> str:
        return f"layer {self.index} [{self.section}]"


def _tensor_names(module: nn.Module) -> dict[int, str]:
    """Tensor id → its name inside `module` (`bn.running_var`), for error messages."""
    named = [*module.named_parameters(), *module.named_buffers()]
    return {id(t): name for name, t in named}


def _transposable(module: nn.Module, kind: type[nn.Module]) -> set[int]:
    """Ids of the weight tensors of every `kind` submodule (the matrices darknet may store transposed)."""
    return {id(m.weight) for m in module.modules() if isinstance(m, kind)}


def _flag(extras: dict[str, str], key: str) -> bool:
    """A darknet int flag among a section's kept (inference-neutral) keys."""
    try:
        return int(extras.get(key, "0")) != 0
    except ValueError:
        return False


def layer_tensors(model: Network, index: int, transpose: bool) -> LayerTensors:
    """Layer `index`'s tensors in file order, or an opaque entry when it owns undescribed parameters."""
    module = model.layers[index]
    section = model.spec.layers[index].section
    if model.spec.layers[index].shares is not None:
        return LayerTensors(index, section.type_name, (), (), ())  # darknet's loader and saver skip it
    if not hasattr(module, "darknet_tensors"):
        owns = any(True for _ in module.parameters())
        return LayerTensors(index, section.type_name, (), (), (), opaque=owns)
    tensors = tuple(module.darknet_tensors())
    names = _tensor_names(module)
    listed = {id(t) for t in tensors}
    missing = [name for name, p in module.named_parameters() if id(p) not in listed]
    if missing:
        raise WeightsError(f"layer {index} [{section.type_name}]: parameters {missing} have no place in the file")
    flipped = _transposable(module, nn.Conv2d) if _flag(section.extras, "flipped") else set()
    linear = _transposable(module, nn.Linear) if transpose else set()
    return LayerTensors(
        index,
        section.type_name,
        tensors,
        tuple(names.get(id(t), "tensor") for t in tensors),
        tuple(id(t) in flipped | linear for t in tensors),
    )


def file_layout(model: Network, header: DarknetHeader) -> list[LayerTensors]:
    """Every layer's place in a file with this header."""
    return [layer_tensors(model, i, header.transpose) for i in range(len(model.layers))]


def _refuse_fused(model: Network, action: str) -> None:
    """Fused networks have no batch-norm tensors left to read or write."""
    if getattr(model, "fused", False):
        raise WeightsError(
            f"cannot {action} darknet weights on a fused network: batch norm was folded into the "
            "convolutions; build the network again (without fuse()) to load or save .weights"
        )


def _refuse_meta(model: Network, action: str) -> None:
    """Meta tensors have no storage: copying into them would silently do nothing, out of them fails."""
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        raise WeightsError(
            f"cannot {action} darknet weights: the network is on the meta device (built under "
            "torch.device('meta')), so its tensors have no storage; call model.to_empty(device=...) "
            "first (for build(weights=...): build without weights, to_empty, then load_darknet_weights)"
        )


def from_file(flat: torch.Tensor, like: torch.Tensor, transposed: bool) -> torch.Tensor:
    """File floats → a tensor shaped like `like` (undoing darknet's transposed storage)."""
    if transposed:
        rows = like.shape[0]
        return flat.view(-1, rows).t().reshape(like.shape)
    return flat.view(like.shape)


def _to_file(tensor: torch.Tensor, transposed: bool) -> torch.Tensor:
    """A tensor → its float32 file order."""
    t = tensor.detach().to("cpu", torch.float32)
    if transposed:
        t = t.reshape(t.shape[0], -1).t()
    return t.reshape(-1)


def read_header(path: str | os.PathLike) -> tuple[DarknetHeader, int]:
    """The header and the file's size, read without reading the body; a FIFO, device or folder is
    refused before it is opened."""
    file = Path(path)
    try:
        info = file.stat()
        if not stat.S_ISREG(info.st_mode):
            raise WeightsError(f"{file}: not a regular file (a FIFO, device or folder?)")
        with file.open("rb") as f:
            return DarknetHeader.from_bytes(f.read(20), str(file)), info.st_size
    except OSError as exc:
        raise WeightsError(f"cannot read weights file {file}: {exc.strerror or exc}") from exc


def _read(path: str | os.PathLike, size: int) -> bytearray:
    """The file's `size` bytes, writable (so torch can view them without copying), or a WeightsError."""
    buffer = bytearray(size)
    try:
        with Path(path).open("rb") as f:
            f.readinto(buffer)
    except OSError as exc:
        raise WeightsError(f"cannot read weights file {path}: {exc.strerror or exc}") from exc
    return buffer


def _check_values(values: torch.Tensor, entry: LayerTensors, start: int, file: str) -> None:
    """Refuse NaN or infinite values, and negative batch-norm variances, naming layer and tensor."""
    for tensor, name in zip(entry.tensors, entry.names):
        check_tensor(values[start : start + tensor.numel()], entry, name, file)
        start += tensor.numel()


def check_tensor(values: torch.Tensor, entry: LayerTensors, name: str, file: str) -> None:
    """Refuse one tensor's NaN or infinite values, or negative values when it is a variance.

    A finite sum proves every value finite (NaN and infinities propagate through it) in one pass
    several times cheaper than min/max; only variances, and tensors whose sum is not finite (a bad
    value, or finite values overflowing it), take the NaN-propagating min/max pass that decides.
    """
    if not values.numel():
        return
    variance = name.endswith("running_var")
    if not variance and math.isfinite(float(values.sum())):
        return
    low, high = (float(v) for v in torch.aminmax(values))
    if not math.isfinite(low) or not math.isfinite(high):
        raise WeightsError(f"{file}: {entry.label} {name} holds NaN or infinite values (validate=False loads them)")
    if variance and low < 0:
        raise WeightsError(f"{file}: {entry.label} {name} holds negative variances (validate=False loads them)")


def plan_load(layout: list[LayerTensors], floats: int, stray: int, file: str) -> tuple[int, list[int]]:
    """Walk the layers over `floats` file floats: (layers covered, file offset of each loaded layer).

    Stops at the first layer needing data when the file ends exactly at a layer boundary; raises
    WeightsError for a truncated tensor, trailing data, or data left for a layer it cannot describe.
    """
    position, offsets = 0, []
    for entry in layout:
        left = floats - position
        if entry.opaque:
            if left or stray:
                raise WeightsError(
                    f"{file}: {entry.label} has parameters a darknet .weights file cannot describe, "
                    f"but {_amount(left, stray)} are left in the file at that point"
                )
            return entry.index, offsets
        need = entry.floats
        if need == 0:
            offsets.append(position)
            continue
        if left == 0 and not stray:
            return entry.index, offsets
        if need > left:
            raise WeightsError(
                f"{file}: truncated: {entry.label} expects {need} floats ({entry.describe()}) "
                f"but only {_amount(left, stray)} are left"
            )
        offsets.append(position)
        position += need
    if position < floats or stray:
        last = layout[-1].label if layout else "the header"
        raise WeightsError(
            f"{file}: {_amount(floats - position, stray)} of trailing data after the last layer ({last}): "
            "the file does not match this network"
        )
    return len(layout), offsets


def _amount(floats: int, stray: int) -> str:
    """`"3 floats"`, or `"3 floats and 2 stray bytes"` when the size is not a whole number of floats."""
    text = f"{floats} float" + ("" if floats == 1 else "s")
    return text + f" and {stray} stray bytes" if stray else text


def warn_old_format(header: DarknetHeader, file: str, stacklevel: int) -> None:
    """Say when the header marks darknet's old format (connected matrices stored transposed)."""
    if header.transpose:
        warnings.warn(
            f"{file}: header version {header.major}.{header.minor} (above 1000) marks darknet's old format: "
            "connected weight matrices are read transposed",
            stacklevel=stacklevel,
        )


def load_darknet_weights(model: Network, path: str | os.PathLike, validate: bool = True) -> int:
    """Load a darknet `.weights` file into `model`; returns how many leading layers it covered.

    A partial file (such as `darknet53.conv.74`) loads the layers it holds and stops at a layer
    boundary, with a PartialWeightsWarning. A truncated tensor, trailing data, a bad header, NaN or
    infinite values or negative variances (unless `validate=False`) raise WeightsError and leave the
    model untouched. The header is kept as `model.darknet_header`.
    """
    _refuse_fused(model, "load")
    _refuse_meta(model, "load")
    file = str(path)
    header, size = read_header(path)
    warn_old_format(header, file, stacklevel=3)
    layout = file_layout(model, header)
    floats, stray = divmod(size - header.size, FLOAT)
    covered, offsets = plan_load(layout, floats, stray, file)  # sizes checked before the body is read
    data = _read(path, size)
    values = torch.frombuffer(data, dtype=torch.float32, offset=header.size, count=floats) if floats else None
    if validate:
        for entry, start in zip(layout, offsets):
            _check_values(values, entry, start, file)
    with torch.no_grad():
        for entry, start in zip(layout, offsets):
            for tensor, transposed in zip(entry.tensors, entry.transposed):
                chunk = values[start : start + tensor.numel()]
                tensor.copy_(from_file(chunk, tensor, transposed))
                start += tensor.numel()
    model.darknet_header = header
    report_partial(file, covered, len(layout))
    return covered


def report_partial(file: str, covered: int, total: int) -> None:
    """Log the load; warn when the file covered only the first layers."""
    if covered < total:
        message = f"{file}: loaded layers 0..{covered - 1} of {total}; the file ends before layer {covered}"
        warnings.warn(message, PartialWeightsWarning, stacklevel=3)
        logger.warning(message)
    else:
        logger.info("%s: loaded all %d layers", file, total)


def save_darknet_weights(model: Network, path: str | os.PathLike, cutoff: int | None = None) -> None:
    """Write `model` as a darknet `.weights` file (layers below `cutoff` only, like darknet's
    `partial`), with the header it was loaded with or darknet's current version."""
    _refuse_fused(model, "save")
    _refuse_meta(model, "save")
    header = getattr(model, "darknet_header", None) or DarknetHeader(*DARKNET_VERSION)
    layout = file_layout(model, header)[:cutoff]
    for entry in layout:
        if entry.opaque:
            raise WeightsError(f"cannot save: {entry.label} has parameters a darknet .weights file cannot describe")
    floats = sum(entry.floats for entry in layout)
    out = bytearray(header.size + floats * FLOAT)
    out[: header.size] = header.to_bytes()
    if floats:
        values = torch.frombuffer(out, dtype=torch.float32, offset=header.size, count=floats)
        position = 0
        for entry in layout:
            for tensor, transposed in zip(entry.tensors, entry.transposed):
                values[position : position + tensor.numel()] = _to_file(tensor, transposed)
                position += tensor.numel()
    Path(path).write_bytes(out)
