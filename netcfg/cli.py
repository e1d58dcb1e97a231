"""The `netcfg` command: one small function per subcommand, listed in `COMMANDS`.

Adding a subcommand is one `Command` entry: its help line, a function declaring its arguments and
a function running it (returning the exit code). Bad input never shows a traceback: cfg errors are
printed one per line as `file:line:col: [section #idx] key: message` and the exit code is 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from .api import build, parse
from .codegen import CONVERT_HELP, convert_arguments, run_convert
from .detection.cli import DETECT_HELP, PREDICT_HELP, detect_arguments, predict_arguments, run_detect, run_predict
from .errors import CfgError, CfgWarning, NetcfgError
from .export.cli import EXPORT_HELP, export_arguments, run_export
from .train.cli import TRAIN_HELP, run_train, train_arguments


@dataclass(frozen=True)
class Command:
    """A subcommand: one help line, its arguments, and the function that runs it."""

    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="cfg files or bundled names")
    parser.add_argument("--strict", action="store_true", help="treat keys darknet ignores as errors, not warnings")


def run_check(args: argparse.Namespace) -> int:
    """Validate each file; print every problem (or OK) and fail when any file has one."""
    failed = False
    for file in args.files:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CfgWarning)
            try:
                parse(file, strict=args.strict)
            except CfgError as exc:
                failed = True
                print(exc)
            except OSError as exc:
                failed = True
                print(f"{file}: cannot read: {exc.strerror or exc}")
            else:
                print(f"{file}: OK")
        for warning in caught:
            print(f"warning: {warning.message}", file=sys.stderr)
    return 1 if failed else 0


def _summary_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="a cfg file or a bundled name such as yolov3-spp")
    parser.add_argument("--width", type=int, help="override [net] width")
    parser.add_argument("--height", type=int, help="override [net] height")


#: Past this much memory for one forward's layer outputs, `netcfg summary` builds and counts on the
#: meta device: no memory, but its first use costs about a second of PyTorch imports.
META_SUMMARY_BYTES = 256 * 2**20


def run_summary(args: argparse.Namespace) -> int:
    """Build the network and print its darknet-style layer table with totals (the generic BFLOPs
    come from one forward, which a large input runs on the meta device)."""
    import torch

    from .budget import estimate
    from .summary import summarize

    overrides = {k: v for k, v in (("width", args.width), ("height", args.height)) if v is not None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CfgWarning)
        spec = parse(args.file, **overrides)
    large = estimate(spec).activation_bytes > META_SUMMARY_BYTES
    with torch.device("meta" if large else "cpu"):
        model = build(spec)
    print(summarize(model), end="")
    return 0


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--markdown", action="store_true", help="print the section reference as Markdown")


def run_list(args: argparse.Namespace) -> int:
    """Print the bundled cfgs and the section types (or the Markdown reference)."""
    from .reference import listing, markdown

    print(markdown() if args.markdown else listing(), end="")
    return 0


COMMANDS: dict[str, Command] = {
    "check": Command("validate cfg files and print every error", _check_arguments, run_check),
    "summary": Command("print a network's layers, shapes, parameters and BFLOPs", _summary_arguments, run_summary),
    "list": Command("list bundled cfgs and section types with their keys", _list_arguments, run_list),
    "convert": Command(CONVERT_HELP, convert_arguments, run_convert),
    "detect": Command(DETECT_HELP, detect_arguments, run_detect),
    "predict": Command(PREDICT_HELP, predict_arguments, run_predict),
    "train": Command(TRAIN_HELP, train_arguments, run_train),
    "export": Command(EXPORT_HELP, export_arguments, run_export),
}


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netcfg",
        description="Darknet-style .cfg files to PyTorch networks.",
        epilog="exit codes: 0 done; 1 a problem in a cfg, weights or file (printed as file:line:col: ...); "
        "2 a usage error (bad arguments, an unusable --class-name)",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub = subparsers.add_parser(name, help=command.help, description=command.help)
        command.arguments(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `netcfg` console script; returns the exit code."""
    args = make_parser().parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the reader left: stop quietly
    except CfgError as exc:
        print(exc, file=sys.stderr)
    except (NetcfgError, OSError) as exc:
        print(f"netcfg {args.command}: error: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
