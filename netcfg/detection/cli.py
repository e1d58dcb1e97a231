"""`netcfg detect` and `netcfg predict`: darknet's `detector test` and `classifier predict` as commands."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from ..api import build
from ..errors import CfgWarning, NetcfgError
from ..network import Network

DETECT_HELP = "detect objects in images with a [yolo]/[region]/[detection] network; draw and print the boxes"
PREDICT_HELP = "print a classifier's top classes for images, with darknet's preprocessing"


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cfg", metavar="CFG", help="a cfg file or a bundled name")
    parser.add_argument("weights", metavar="WEIGHTS", help="darknet .weights file")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    parser.add_argument("--names", help="a darknet .names file, or coco / voc (default: class N)")
    parser.add_argument("--width", type=int, help="override [net] width")
    parser.add_argument("--height", type=int, help="override [net] height")


def detect_arguments(parser: argparse.ArgumentParser) -> None:
    _common_arguments(parser)
    parser.add_argument("--thresh", type=float, default=0.25, help="score threshold (default 0.25)")
    parser.add_argument("--nms", type=float, default=0.45, help="NMS overlap threshold; 0 for none (default 0.45)")
    parser.add_argument("-o", "--output", default="predictions", help="folder for the drawn images (predictions)")
    parser.add_argument("--json", action="store_true", help="print one JSON line per image instead of a table")


def predict_arguments(parser: argparse.ArgumentParser) -> None:
    _common_arguments(parser)
    parser.add_argument("--top", type=int, default=5, help="how many classes to print (default 5)")


def _model(args: argparse.Namespace) -> Network:
    overrides = {k: v for k, v in (("width", args.width), ("height", args.height)) if v is not None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CfgWarning)
        return build(args.cfg, args.weights, **overrides)


class Progress:
    """A progress bar on stderr for several images: redrawn in place on a terminal, a line per image
    otherwise; `note` prints a message (an error) without mangling the bar."""

    WIDTH = 24

    def __init__(self, total: int):
        self.total, self.live = total, sys.stderr.isatty()

    def step(self, done: int, image: str) -> None:
        if self.total < 2:
            return
        filled = self.WIDTH * done // self.total
        bar = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{self.total} {image}"
        if self.live:
            end = "\n" if done == self.total else ""
            print(f"\r\033[K{bar}", end=end, file=sys.stderr, flush=True)
        else:
            print(bar, file=sys.stderr)

    def note(self, message: str) -> None:
        print(f"\r\033[K{message}" if self.live else message, file=sys.stderr, flush=True)


def _target(folder: Path, image: str, used: set[Path]) -> Path:
    """Where the drawn copy of `image` goes: its name in `folder`, numbered when two images share one."""
    path, n = folder / Path(image).name, 1
    while path in used:
        path, n = folder / f"{Path(image).stem}-{n}{Path(image).suffix}", n + 1
    used.add(path)
    return path


def run_detect(args: argparse.Namespace) -> int:
    """Detect in each image, draw it into the output folder and print its detections."""
    from .core import check_fraction, detect, detection_heads
    from .draw import draw
    from .names import class_names

    model = _model(args)
    classes = detection_heads(model).classes
    for name, value in (("--thresh", args.thresh), ("--nms", args.nms)):
        check_fraction(name, value)
    labels = class_names(args.names, classes)
    failed, used = False, set()
    if not args.json:
        print(f"{'image':<24} {'class':<16} {'score':>6} {'x1':>7} {'y1':>7} {'x2':>7} {'y2':>7}")
    progress = Progress(len(args.images))
    for n, image in enumerate(args.images, 1):
        progress.step(n, image)
        try:
            (found,) = detect(model, image, thresh=args.thresh, nms=args.nms, names=labels)
            draw(image, found, classes, _target(Path(args.output), image, used))
        except NetcfgError as exc:
            failed = True
            progress.note(f"netcfg detect: error: {exc}")
            continue
        _print_detections(image, found, args.json)
    return 1 if failed else 0


def _print_detections(image: str, found: list, as_json: bool) -> None:
    """One JSON line for the image, or one table row per detection."""
    if as_json:
        rows = [
            dict(
                box=[round(v, 2) for v in d.box],
                class_id=d.class_id,
                class_name=d.class_name,
                score=round(d.score, 6),
                objectness=round(d.objectness, 6),
            )
            for d in found
        ]
        print(json.dumps({"image": image, "detections": rows}))
        return
    for d in found:
        x1, y1, x2, y2 = d.box
        print(f"{image:<24} {d.class_name:<16} {d.score:>6.1%} {x1:>7.1f} {y1:>7.1f} {x2:>7.1f} {y2:>7.1f}")


def run_predict(args: argparse.Namespace) -> int:
    """Print the top classes of each image, as darknet's `classifier predict`."""
    from .core import check_classifier, classify

    model = _model(args)
    check_classifier(model, args.top)
    failed, progress = False, Progress(len(args.images))
    for n, image in enumerate(args.images, 1):
        progress.step(n, image)
        try:
            (best,) = classify(model, image, top=args.top, names=args.names)
        except NetcfgError as exc:
            failed = True
            progress.note(f"netcfg predict: error: {exc}")
            continue
        print(f"{image}:")
        for p in best:
            print(f"  {p.class_name}: {p.probability:.6f}")
    return 1 if failed else 0
