"""`netcfg export CFG [--weights W] [-o model.onnx] ...`: a cfg (and its weights) → an ONNX file, with
the onnxruntime parity printed at the end."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from ..errors import CfgWarning
from .nms import IOU_THRESH, THRESH

EXPORT_HELP = "export a network to ONNX and check it against onnxruntime"
FORMATS = ("onnx",)


def export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cfg", metavar="CFG", help="a cfg file or a bundled name such as yolov3-tiny")
    parser.add_argument("--weights", metavar="W", help="darknet .weights to load (default: random initialisation)")
    parser.add_argument("--format", choices=FORMATS, default="onnx", help="the output format (default: onnx)")
    parser.add_argument("-o", "--output", metavar="FILE", help="where to write (default: the cfg's name + .onnx)")
    parser.add_argument("--dynamic", action="store_true", help="dynamic batch and, where it runs, image size")
    parser.add_argument("--fuse", action="store_true", help="fold batch norms and re-parameterised blocks first")
    parser.add_argument("--nms", action="store_true", help="include decode + thresholds + NMS: output (K, 7) boxes")
    parser.add_argument("--thresh", type=_unit, default=THRESH, help=f"score threshold with --nms (default {THRESH})")
    parser.add_argument("--iou", type=_unit, default=IOU_THRESH, help=f"NMS IoU threshold (default {IOU_THRESH})")
    parser.add_argument("--opset", type=int, help="the ONNX opset (default: the exporter's)")
    parser.add_argument("--width", type=int, help="override [net] width")
    parser.add_argument("--height", type=int, help="override [net] height")


def _unit(text: str) -> float:
    """A threshold in [0, 1], else an argparse usage error."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number in [0, 1]")
    return value


def run_export(args: argparse.Namespace) -> int:
    """Build, export, print where the file went and the parity figures; 1 when an input shape's abs
    and rel errors both exceed ATOL and RTOL (or the outputs' shapes differ)."""
    from ..api import build
    from .onnx import export_onnx, require_export_dependencies

    require_export_dependencies()
    overrides = {k: v for k, v in (("width", args.width), ("height", args.height)) if v is not None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CfgWarning)
        model = build(args.cfg, args.weights, **overrides)
    output = Path(args.output) if args.output else Path(Path(args.cfg).name).with_suffix(".onnx")
    result = export_onnx(
        model, output, dynamic=args.dynamic, opset=args.opset, fuse=args.fuse, nms=args.nms,
        thresh=args.thresh, iou_thresh=args.iou,
    )  # fmt: skip
    dynamic = ", ".join(_AXES[k] for k in result.dynamic_axes) or "none"
    print(f"wrote {output} (outputs: {', '.join(result.output_names)}; dynamic axes: {dynamic})")
    for parity in result.parity:
        print(parity)
    failed = [p for p in result.parity if not (p.within(ATOL, float("inf")) or p.within(float("inf"), RTOL))]
    if failed:
        message = f"onnxruntime disagrees with torch beyond abs {ATOL} and rel {RTOL}"
        print(f"netcfg export: error: {message}", file=sys.stderr)
    return 1 if failed else 0


_AXES = {0: "batch", 1: "channels", 2: "height", 3: "width"}
#: What the parity must stay within for the command to succeed: float32 rounding through a deep net.
ATOL, RTOL = 1e-3, 1e-2
