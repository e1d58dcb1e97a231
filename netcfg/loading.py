"""`build(cfg, weights=...)` without wasted work: the layers a `.weights` file covers are made on the
meta device and read from the file straight into their new storage, so no random initialisation is
spent on values the file replaces and the weights are in memory once (no file buffer beside them).
A large file is read by a few threads at once, each over its own stretch and checking each tensor
straight after reading it: most of a fresh process's load is the kernel giving the new tensors their
pages, which runs in parallel.

Layers the file does not cover (a partial file such as `darknet53.conv.74`), and layers holding state
the file cannot describe (a fixed buffer), are built as usual, so they keep their normal
initialisation. Sizes are checked against the network before any tensor is allocated, with the
messages `load_darknet_weights` gives; a bad file raises WeightsError and no network is returned.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
from torch import nn

from .errors import WeightsError
from .memory_format import rows_per_step
from .network import Network, build_network, layer_module
from .spec import Spec
from .weights import (
    FLOAT,
    LayerTensors,
    check_tensor,
    file_layout,
    from_file,
    layer_tensors,
    load_darknet_weights,
    plan_load,
    read_header,
    report_partial,
    warn_old_format,
)

#: Bytes of file per reading thread (fewer bytes are not worth a thread) and the most threads.
READ_STRETCH = 16 * 2**20
MAX_READERS = 4
#: Bytes a reading thread stages at a time on their way into a tensor not laid out as the file is.
SCRATCH_BYTES = 2**20


def build_loaded(
    spec: Spec,
    path: str | os.PathLike,
    validate: bool = True,
    skeleton: list[nn.Module] | None = None,
    channels_last: bool = False,
) -> Network:
    """A network for `spec` holding the darknet weights in `path` (see the module docstring);
    `skeleton` is the layers' modules already made on the meta device, if any (`budget.meta_modules`);
    `channels_last` makes the kernels the file fills channels_last as they are read."""
    if torch.get_default_device().type != "cpu":
        model = build_network(spec)  # under meta this is refused, as the file need not cover every tensor
        load_darknet_weights(model, path, validate)
        return model
    file = str(path)
    header, size = read_header(path)
    warn_old_format(header, file, stacklevel=4)
    with torch.device("meta"):
        meta = build_network(spec, skeleton)
    layout = file_layout(meta, header)
    covered, offsets = plan_load(layout, *divmod(size - header.size, FLOAT), file)
    model, entries = _loaded_network(spec, meta, layout[:covered], header.transpose, channels_last)
    _read_layers(entries, offsets, path, header.size, validate)
    model.darknet_header = header
    report_partial(file, covered, len(layout))
    return model


def _loaded_network(
    spec: Spec, skeleton: Network, covered: list[LayerTensors], transpose: bool, channels_last: bool
) -> tuple[Network, list[LayerTensors]]:
    """The network, its covered layers whose tensors all come from the file being the skeleton's given
    storage, the rest built as usual; with the covered layers' file entries over its tensors."""
    file_made = {e.index for e in covered if e.floats and _file_holds_all(skeleton.layers[e.index], e)}
    made: dict[int, torch.Tensor] = {}
    modules = [
        _materialised(skeleton.layers[i], made, channels_last) if i in file_made else layer_module(spec, i)
        for i in range(len(spec.layers))
    ]
    model = build_network(spec, modules)
    return model, [
        _made_entry(e, made) if e.index in file_made else layer_tensors(model, e.index, transpose) for e in covered
    ]


def _file_holds_all(module: nn.Module, entry: LayerTensors) -> bool:
    """Whether the file gives every tensor of `module` (batch norms' step counters aside, which start
    at 0) and only its own tensors (not a view of one, which materialising would leave behind)."""
    listed = {id(t) for t in entry.tensors}
    named = [*module.named_parameters(), *module.named_buffers()]
    owned = all(id(t) in listed or name.endswith("num_batches_tracked") for name, t in named)
    return owned and listed <= {id(t) for _, t in named}


def _materialised(module: nn.Module, made: dict[int, torch.Tensor], channels_last: bool) -> nn.Module:
    """A meta module given uninitialised CPU storage (the file fills it), 4-d parameters channels_last
    if asked, step counters set to 0; `made` maps each meta tensor's id to its new tensor. Plain
    `torch.empty` per tensor: `to_empty` on meta tensors imports sympy, a second on first use."""
    for sub in module.modules():
        for name, param in sub._parameters.items():
            if param is not None:
                if id(param) not in made:
                    layout = torch.channels_last if channels_last and param.dim() == 4 else torch.contiguous_format
                    storage = torch.empty(param.shape, dtype=param.dtype, memory_format=layout)
                    made[id(param)] = nn.Parameter(storage, param.requires_grad)
                sub._parameters[name] = made[id(param)]
        for name, buffer in sub._buffers.items():
            if buffer is not None:
                if id(buffer) not in made:
                    make = torch.zeros if name == "num_batches_tracked" else torch.empty
                    made[id(buffer)] = make(buffer.shape, dtype=buffer.dtype)
                sub._buffers[name] = made[id(buffer)]
    return module


def _made_entry(entry: LayerTensors, made: dict[int, torch.Tensor]) -> LayerTensors:
    """A skeleton layer's file entry over its materialised tensors."""
    return dataclasses.replace(entry, tensors=tuple(made[id(t)] for t in entry.tensors))


@dataclass(frozen=True)
class _Read:
    """One tensor to fill from the file: where its floats start (in bytes) and what it is, for messages."""

    tensor: torch.Tensor
    transposed: bool
    position: int
    entry: LayerTensors
    name: str

    @property
    def size(self) -> int:
        return self.tensor.numel() * FLOAT


def _read_layers(
    layout: list[LayerTensors], offsets: list[int], path: str | os.PathLike, start: int, validate: bool
) -> None:
    """Read each layer's tensors from its file offset, checking each as it is read when asked.

    The file is read by a few threads, each over its own handle and its own stretch of the file
    (the reads and checks release the GIL, and most of their time is the kernel filling fresh pages;
    a tensor checked straight after its read is still in cache). The first failure in file order
    wins, as a sequential read-and-check would report it."""
    file = str(path)
    reads = [read for entry, offset in zip(layout, offsets) for read in _entry_reads(entry, start + offset * FLOAT)]
    failure = _read_all(reads, path, file, validate)
    if failure:
        raise failure[1]


def _entry_reads(entry: LayerTensors, position: int) -> list[_Read]:
    """One layer's tensors as reads, in file order, from byte `position` on."""
    reads = []
    for tensor, name, transposed in zip(entry.tensors, entry.names, entry.transposed):
        reads.append(_Read(tensor, transposed, position, entry, name))
        position += tensor.numel() * FLOAT
    return reads


def _read_all(
    reads: list[_Read], path: str | os.PathLike, file: str, validate: bool
) -> tuple[int, WeightsError] | None:
    """Fill (and check) every tensor, a stretch of the file per thread; the first failure (read index,
    error) or None."""
    groups = _stretches(reads, _workers(sum(read.size for read in reads if _direct(read.tensor, read.transposed))))
    try:
        with contextlib.ExitStack() as stack:
            handles = [stack.enter_context(open(path, "rb")) for _ in groups]  # noqa: SIM115
            stretches = [functools.partial(_read_stretch, f, g, file, validate) for f, g in zip(handles, groups)]
            if len(stretches) == 1:
                failures = [stretches[0]()]
            else:
                with ThreadPoolExecutor(len(stretches)) as pool:
                    failures = list(pool.map(lambda stretch: stretch(), stretches))
    except OSError as exc:
        raise WeightsError(f"cannot read weights file {file}: {exc.strerror or exc}") from exc
    return min((f for f in failures if f is not None), key=lambda f: f[0], default=None)


def _workers(size: int) -> int:
    """How many threads read, for `size` bytes read straight into tensors: one per `READ_STRETCH`
    bytes, at most as many as torch's intra-op threads (the caller's CPU budget) and `MAX_READERS`.
    Staged reads do not count: their copies already run on torch's threads, which more readers
    only crowd (yolov3-tiny's channels_last build + load took 13% longer with two readers)."""
    return max(1, min(size // READ_STRETCH, torch.get_num_threads(), os.cpu_count() or 1, MAX_READERS))


def _stretches(reads: list[_Read], count: int) -> list[list[tuple[int, _Read]]]:
    """`reads` (numbered) cut into `count` consecutive stretches of about equal bytes."""
    total = sum(read.size for read in reads) or 1
    groups: list[list[tuple[int, _Read]]] = [[] for _ in range(count)]
    done = 0
    for i, read in enumerate(reads):
        groups[min(count - 1, done * count // total)].append((i, read))
        done += read.size
    return [group for group in groups if group] or [[]]


def _read_stretch(
    f: io.BufferedReader, reads: list[tuple[int, _Read]], file: str, validate: bool
) -> tuple[int, WeightsError] | None:
    """Fill (and check) one stretch's tensors from `f`; the first failure (read index, error) or None."""
    scratch = torch.empty(SCRATCH_BYTES // FLOAT, dtype=torch.float32)
    with torch.no_grad():  # grad mode is per thread
        for i, read in reads:
            try:
                f.seek(read.position)
                if not _read_tensor(f, read.tensor, read.transposed, scratch):
                    return i, WeightsError(
                        f"cannot read weights file {file}: it ended early (was it changed while being read?)"
                    )
                if validate:
                    check_tensor(read.tensor.detach(), read.entry, read.name, file)
            except OSError as exc:
                return i, WeightsError(f"cannot read weights file {file}: {exc.strerror or exc}")
            except WeightsError as exc:
                return i, exc
    return None


def _read_tensor(f: io.BufferedReader, tensor: torch.Tensor, transposed: bool, scratch: torch.Tensor) -> bool:
    """Fill `tensor` from the file's next floats (False when the file ends first): straight into its
    storage when that is float32 in file order; else through `scratch` a few rows at a time (one
    copy that re-lays a channels_last kernel or casts the dtype), or through one temporary of the
    tensor's size for darknet's transposed storage."""
    target = tensor.detach()
    if _direct(target, transposed):
        return _read_floats(f, target)
    if transposed or target.dim() == 0:
        flat = torch.empty(target.numel(), dtype=torch.float32)
        if not _read_floats(f, flat):
            return False
        target.copy_(from_file(flat, target, transposed))
        return True
    step = rows_per_step(target, scratch.numel())
    for start in range(0, target.shape[0], step):
        part = target[start : start + step]
        chunk = scratch[: part.numel()] if part.numel() <= scratch.numel() else torch.empty(part.numel())
        if not _read_floats(f, chunk):
            return False
        part.copy_(chunk.view(part.shape))
    return True


def _direct(tensor: torch.Tensor, transposed: bool) -> bool:
    """Whether the file's floats go straight into the tensor's storage: float32 CPU in file order."""
    return tensor.dtype == torch.float32 and tensor.is_contiguous() and not transposed and tensor.device.type == "cpu"


def _read_floats(f: io.BufferedReader, flat: torch.Tensor) -> bool:
    """Fill the contiguous float32 `flat` from the file's next bytes; False when the file ends first."""
    wanted = flat.numel() * FLOAT
    return not wanted or f.readinto(_writable_bytes(flat)) == wanted


def _writable_bytes(tensor: torch.Tensor) -> memoryview:
    """The bytes of a contiguous CPU tensor, writable in place (no NumPy needed); valid while it lives."""
    raw = (ctypes.c_char * (tensor.numel() * tensor.element_size())).from_address(tensor.data_ptr())
    return memoryview(raw).cast("B")
