"""`export_onnx`: a Network → an ONNX file with the dynamo exporter, checked against onnxruntime."""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import CfgError, NetcfgError
from ..network import Network
from ..resize import resized
from .nms import IOU_THRESH, THRESH, WithNms, nms_onnx
from .parity import Parity, compare

#: What the export extra installs; named in the error when one is missing.
REQUIRED = ("onnx", "onnxscript", "onnxruntime")
INPUT_NAME = "images"


class ExportError(NetcfgError):
    """The network cannot be exported as asked (missing extra, no head for --nms, an exporter failure)."""


@dataclass(frozen=True)
class OnnxExport:
    """An exported model: the file written (if any), its serialised bytes, which input axes are
    dynamic, and the onnxruntime parity at each input shape checked."""

    path: Path | None
    model: bytes
    output_names: tuple[str, ...]
    dynamic_axes: tuple[int, ...]
    parity: tuple[Parity, ...]


def require_export_dependencies() -> None:
    """Check the export extra's packages are installed (and torch has the dynamo exporter's automatic
    dynamic sizes, torch ≥ 2.6), or ExportError naming what to install."""
    missing = [name for name in REQUIRED if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(f"exporting needs {', '.join(missing)}: pip install 'netcfg[export]'")
    if not hasattr(torch.export.Dim, "AUTO"):
        raise ExportError(f"exporting needs torch >= 2.6 (the dynamo exporter), not {torch.__version__}")


def export_onnx(
    model: Network,
    path: str | os.PathLike | None = None,
    *,
    dynamic: bool = False,
    opset: int | None = None,
    fuse: bool = False,
    nms: bool = False,
    thresh: float = THRESH,
    iou_thresh: float = IOU_THRESH,
    check: bool = True,
) -> OnnxExport:
    """Export `model` (a copy in eval mode, fused first with `fuse`) at its `[net]` size; `dynamic`
    frees the batch and, where the network runs at other sizes, height and width; `nms` appends
    decode + thresholds + greedy NMS (output `detections`, see `netcfg.export.nms`). With `check`
    the file is run in onnxruntime against torch at the export shape (and, when dynamic, at another)."""
    require_export_dependencies()
    network = copy.deepcopy(model).eval().reset_state()
    if fuse:
        network.fuse()
    module: nn.Module = WithNms(network, thresh, iou_thresh) if nms else network
    example = _example(network, (1, *network.spec.input_shape))
    names = ("detections",) if nms else _output_names(network)
    onnx_model = export_module(module, (example,), (INPUT_NAME,), names, dynamic=dynamic, opset=opset)
    if path is not None:
        Path(path).write_bytes(onnx_model)
    axes = _dynamic_axes(onnx_model)
    shapes = _check_shapes(network, axes) if check else []
    parity = tuple(_parity(module, network, onnx_model, shape) for shape in shapes)
    return OnnxExport(None if path is None else Path(path), onnx_model, names, axes, parity)


def export_module(
    module: nn.Module,
    examples: tuple[torch.Tensor, ...],
    input_names: Sequence[str],
    output_names: Sequence[str] | None = None,
    *,
    dynamic: bool = False,
    opset: int | None = None,
    optimize: bool = True,
) -> bytes:
    """The dynamo exporter's ONNX bytes for `module(*examples)` (4-d inputs; `dynamic` frees their
    batch, height and width where the module allows; `optimize` runs onnxscript's graph optimiser,
    slow on large graphs); ExportError when it fails."""
    free = {0: torch.export.Dim.AUTO, 2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO}
    shapes = tuple(free for _ in examples) if dynamic else None
    with warnings.catch_warnings(), torch.no_grad(), _quiet_exporter():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                module,
                examples,
                dynamo=True,
                input_names=list(input_names),
                output_names=None if output_names is None else list(output_names),
                opset_version=opset,
                dynamic_shapes=shapes,
                custom_translation_table={torch.ops.netcfg.nms.default: nms_onnx},
                optimize=optimize,
                verbose=False,
            )
        except Exception as exc:  # the exporter raises many types; the message is what the user needs
            raise ExportError(f"the ONNX exporter failed: {_root_cause(exc)}") from exc
    buffer = io.BytesIO()
    program.save(buffer)
    return buffer.getvalue()


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's log lines (e.g. that torchvision's ops are skipped) while it runs."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _root_cause(exc: BaseException) -> str:
    """The innermost exception of the exporter's chain, as `Type: first line`: the actual problem."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def _example(network: Network, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """A seeded uniform [0, 1) input (an image's range) in the network's dtype and device."""
    reference = next((t for t in network.state_dict().values() if t.is_floating_point()), None)
    dtype = torch.float32 if reference is None else reference.dtype
    device = torch.device("cpu") if reference is None else reference.device
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=generator).to(device=device, dtype=dtype)


def _output_names(network: Network) -> tuple[str, ...]:
    """One name per model output: `output` for a single one, else `layer{i}` by darknet layer."""
    outputs = network.spec.outputs
    listed = any(network.spec.layers[i].section.is_output for i in outputs)
    return tuple(f"layer{i}" for i in outputs) if listed or len(outputs) > 1 else ("output",)


def _dynamic_axes(onnx_model: bytes) -> tuple[int, ...]:
    """The input axes the exported model leaves symbolic."""
    import onnx

    graph = onnx.load_from_string(onnx_model).graph
    return tuple(k for k, dim in enumerate(graph.input[0].type.tensor_type.shape.dim) if dim.dim_param)


def _check_shapes(network: Network, axes: Sequence[int]) -> list[tuple[int, ...]]:
    """The export shape, and with dynamic axes another shape changing each of them (a size the
    network runs at: the first of +32/+64, +64/+32, ... on height/width that `resized` accepts)."""
    channels, height, width = network.spec.input_shape
    shapes = [(1, channels, height, width)]
    if not axes:
        return shapes
    batch = 2 if 0 in axes else 1
    for dh, dw in ((32, 64), (64, 32), (32, 32), (8, 16), (16, 8)):
        size = (channels, height + dh * (2 in axes), width + dw * (3 in axes))
        try:
            resized(network.spec, size)
        except CfgError:
            continue
        shapes.append((batch, *size))
        return shapes
    shapes.append((batch, channels, height, width))
    return shapes


def _parity(module: nn.Module, network: Network, onnx_model: bytes, shape: tuple[int, ...]) -> Parity:
    """onnxruntime against torch on a seeded input of `shape`."""
    import onnxruntime

    x = _example(network, shape, seed=len(shape) + sum(shape))
    session = onnxruntime.InferenceSession(onnx_model, providers=["CPUExecutionProvider"])
    got = session.run(None, {INPUT_NAME: x.detach().cpu().float().numpy()})
    network.reset_state()
    with torch.no_grad():
        want = module(x)
    network.reset_state()
    want = want if isinstance(want, (list, tuple)) else [want]
    unordered = isinstance(module, WithNms)
    return compare(shape, [w.detach().cpu().float().numpy() for w in want], got, unordered)
