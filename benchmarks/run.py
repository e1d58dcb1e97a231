"""Every figure of the performance table in one command: `python benchmarks/run.py [--threads 2] [--rounds 5]
[--size 416]`.

Each figure is measured in a fresh process (`benchmarks/figures.py`), the processes interleaved round
after round, and the medians over rounds printed with ratios against the baselines measured in the
same run: OpenCV DNN (`cv2.dnn.readNetFromDarknet`), ONNX Runtime on netcfg's fused network exported
with `torch.onnx.export(dynamo=True)`, and the module `netcfg convert` writes. The cfgs are darknet's
own (`../shared/darknet-cfg` beside the repo, or `--cfgs`), with one seeded weights file per cfg
shared by every tool. Peak memory is the build + load + one forward process's peak resident set.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

import netcfg

HERE = Path(__file__).resolve().parent
DEFAULT_CFGS = HERE.parent.parent / "shared" / "darknet-cfg"
FORWARDS = ["forward", "forward-fused", "forward-optimized", "forward-generated", "forward-opencv"]
#: The convolutions' time at this machine's matrix-multiply rate (`figures.convolution_floor`).
FLOOR = "convolution-floor"
#: A figure that is a ratio (eager over generated, interleaved in one process), not a time.
OVER_GENERATED = "forward-over-generated"


def seeded_weights(cfg: Path, path: Path) -> None:
    """A darknet .weights file of seeded values (plausible batch-norm statistics) for `cfg`."""
    torch.manual_seed(0)
    model = netcfg.build(cfg)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith(("running_var", "bn.weight")):
                tensor.uniform_(0.5, 1.5)
            elif name.endswith("running_mean"):
                tensor.normal_(0, 0.1)
    netcfg.save_darknet_weights(model, path)


def export_onnx(cfg: Path, weights: Path, path: Path, size: int) -> bool:
    """Export the fused network at `size` for ONNX Runtime (benchmark-side only); False when export fails."""
    model = netcfg.build(cfg, weights=weights, **({"width": size, "height": size} if size else {})).fuse()
    net = model.spec.net
    x = torch.randn(1, net.channels, net.height, net.width)
    try:
        torch.onnx.export(model, (x,), str(path), dynamo=True, optimize=True, verbose=False)
    except Exception as exc:  # noqa: BLE001  (a benchmark reports the baseline it could not make)
        print(f"ONNX export of {cfg.name} failed ({type(exc).__name__}); no ONNX Runtime figure", file=sys.stderr)
        return False
    return True


def measure(figure: str, cfg: str, weights: str, threads: int, size: int, onnx_path: str) -> tuple[float, float]:
    """(seconds, peak MiB) of one figure in a fresh process."""
    command = [sys.executable, str(HERE / "figures.py"), figure, cfg, weights, str(threads), str(size), onnx_path]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=3600).stdout.split()
    return float(out[-2]), float(out[-1])


def jobs(cfgs: Path, work: Path, compile_too: bool, size: int) -> list[tuple[str, str, str, str, str]]:
    """(label, figure, cfg, weights, onnx) for every measurement of one round."""
    out = []
    for name in ("yolov3-spp", "yolov3-tiny"):
        cfg, weights, onnx_path = cfgs / f"{name}.cfg", work / f"{name}.weights", work / f"{name}.onnx"
        seeded_weights(cfg, weights)
        figures = FORWARDS + [OVER_GENERATED, FLOOR] + (["forward-compiled"] if compile_too else [])
        if export_onnx(cfg, weights, onnx_path, size):
            figures.append("forward-onnxruntime")
        figures += ["build", "build-load", "load-opencv", "parse"]
        out += [(f"{name} {f}", f, str(cfg), str(weights), str(onnx_path)) for f in figures]
    spp = (str(cfgs / "yolov3-spp.cfg"), str(work / "yolov3-spp.weights"), "")
    out.append(("yolov3-spp build-load-forward", "build-load-forward", *spp))
    out.append(("yolov4 parse", "parse", str(cfgs / "yolov4.cfg"), "", ""))
    out += [(f"{n} layers parse+build", "deep-parse-build", str(n), "", "") for n in (1000, 10000)]
    return out


def ratio(results: dict[str, list[float]], a: str, b: str) -> str:
    """The median of per-round ratios a/b, or '—' when either is missing."""
    if a not in results or b not in results:
        return "—"
    return f"{statistics.median(x / y for x, y in zip(results[a], results[b])):.2f}×"


def report(results: dict[str, list[float]], peaks: dict[str, list[float]]) -> None:
    """Print every median, then the ratios the performance targets are stated in."""
    for label, values in results.items():
        if label.endswith((OVER_GENERATED, FLOOR)):
            continue
        peak = statistics.median(peaks[label])
        print(f"{label:<44} {statistics.median(values) * 1e3:10.1f} ms   peak {peak:7.0f} MiB")
    print()
    for name in ("yolov3-spp", "yolov3-tiny"):
        for figure in ("forward", "forward-fused", "forward-optimized", "forward-compiled"):
            a = f"{name} {figure}"
            if a in results:
                others = ", ".join(
                    f"/{b} {ratio(results, a, f'{name} forward-{b}')}" for b in ("generated", "opencv", "onnxruntime")
                )
                print(f"{a:<44} {others}")
        if f"{name} {OVER_GENERATED}" in results:
            interleaved = statistics.median(results[f"{name} {OVER_GENERATED}"])
            print(f"{name + ' forward / generated, in one process':<44} {interleaved:.3f}× (interleaved calls)")
        _report_floor(results, name)
        print(f"{name + ' build-load':<44} /opencv load {ratio(results, f'{name} build-load', f'{name} load-opencv')}")
    if "1000 layers parse+build" in results:
        deep = ratio(results, "10000 layers parse+build", "1000 layers parse+build")
        print(f"{'10,000 / 1,000 layers parse+build (10× if linear)':<44} {deep}")


def _report_floor(results: dict[str, list[float]], name: str) -> None:
    """The convolutions' floor on this machine, and each optimised runtime's forward over it."""
    floor = f"{name} {FLOOR}"
    if floor not in results:
        return
    over = ", ".join(
        f"{who} {ratio(results, f'{name} forward-{figure}', floor)}"
        for who, figure in (("optimize()", "optimized"), ("OpenCV", "opencv"), ("ONNX Runtime", "onnxruntime"))
    )
    least = statistics.median(results[floor]) * 1e3
    print(f"{name + ' convolutions at the mm rate':<44} {least:.1f} ms; over it: {over}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfgs", type=Path, default=DEFAULT_CFGS, help="folder holding darknet's cfg files")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=416, help="input width and height (0: each cfg's own)")
    parser.add_argument("--compile", action="store_true", help="also time optimize(compile=True) (minutes)")
    args = parser.parse_args()
    results: dict[str, list[float]] = {}
    peaks: dict[str, list[float]] = {}
    size = f"{args.size}×{args.size}" if args.size else "each cfg's own size"
    rounds = f"{args.rounds} rounds of fresh processes"
    with tempfile.TemporaryDirectory(prefix="netcfg-bench-") as work:
        plan = jobs(args.cfgs, Path(work), args.compile, args.size)
        print(f"torch {torch.__version__}, {args.threads} threads, {size}, {rounds}", flush=True)
        for _ in range(args.rounds):
            for label, figure, cfg, weights, onnx_path in plan:
                seconds, peak = measure(figure, cfg, weights, args.threads, args.size, onnx_path)
                results.setdefault(label, []).append(seconds)
                peaks.setdefault(label, []).append(peak)
    report(results, peaks)


if __name__ == "__main__":
    main()
