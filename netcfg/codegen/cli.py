"""`netcfg convert`: a cfg → Python source on standard output or in a file."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from ..errors import CfgError, CfgWarning
from .emit import to_python

CONVERT_HELP = "write a cfg as a plain PyTorch module (Python source)"


def convert_arguments(parser: argparse.ArgumentParser) -> None:
    """The `convert` subcommand's arguments (usable as a `netcfg.cli.Command`'s `arguments`)."""
    parser.add_argument("file", metavar="FILE", help="a cfg file or a bundled name such as yolov3-tiny")
    parser.add_argument("-o", "--output", help="write here instead of standard output")
    parser.add_argument("--class-name", help="the nn.Module class's name (default: from the file name)")
    parser.add_argument("--standalone", action="store_true", help="inline netcfg's block modules: needs only torch")
    parser.add_argument("--width", type=int, help="override [net] width")
    parser.add_argument("--height", type=int, help="override [net] height")


def run_convert(args: argparse.Namespace) -> int:
    """Run `convert` on parsed arguments (usable as a `netcfg.cli.Command`'s `run`): 0 when written,
    1 for a bad cfg or file, 2 for an unusable class name."""
    overrides = {k: v for k, v in (("width", args.width), ("height", args.height)) if v is not None}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CfgWarning)
        try:
            source = to_python(args.file, args.class_name, args.standalone, **overrides)
        except CfgError as exc:
            print(exc, file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"{args.file}: cannot read: {exc.strerror or exc}", file=sys.stderr)
            return 1
        except ValueError as exc:
            print(f"netcfg convert: error: {exc}", file=sys.stderr)
            return 2
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    return _write(source, args.output)


def _write(source: str, output: str | None) -> int:
    if output is None:
        sys.stdout.write(source)
        return 0
    try:
        Path(output).write_text(source, encoding="utf-8")
    except OSError as exc:
        print(f"{output}: cannot write: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
