"""One figure measured in this process: `python benchmarks/figures.py FIGURE CFG WEIGHTS THREADS SIZE [ONNX]`.

Prints `seconds peak_MiB`: the median over a few repeats inside the process (for
`forward-over-generated`, a ratio in place of seconds) and the process's peak resident memory,
`VmHWM` (unlike `ru_maxrss` it does not carry the forking parent's peak across exec), for the driver
`benchmarks/run.py` to collect from fresh processes. SIZE is the input's width and height (0: the
cfg's own `[net]` size).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from forward import generated_module

import netcfg
from netcfg.summary import measure_bflops

REPEATS = 5
#: Untimed calls first: a fresh process's first forwards fault in fresh pages for their activations
#: (32,000 and then 15,000 page faults in yolov3-spp's first two), ONNX Runtime fills its arena.
WARMUP = 3
SIZE: dict[str, int] = {}  # the network overrides for this process's input size (none: the cfg's own)


def build(cfg: str, weights: str | None = None) -> netcfg.Network:
    """The network at the measured input size."""
    return netcfg.build(cfg, weights=weights, **SIZE)


def median_seconds(fn: Callable[[], object], repeats: int = REPEATS, warmup: int = WARMUP) -> float:
    """Median wall time of `fn` after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def once(fn: Callable[[], object]) -> float:
    """Wall time of one call (for figures a fresh process should see once: builds, parses)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _input(model: netcfg.Network) -> torch.Tensor:
    net = model.spec.net
    return torch.randn(1, net.channels, net.height, net.width, generator=torch.Generator().manual_seed(0))


def netcfg_forward(cfg: str, weights: str, variant: str) -> float:
    """Forward time of netcfg's network: eager, fused, optimize(), optimize(compile=True), generated."""
    model = build(cfg, weights)
    x = _input(model)
    if variant == "generated":
        generated = generated_module(cfg, SIZE.get("width", 0)).eval()
        generated.load_state_dict(model.state_dict())
        model = generated
    elif variant == "fused":
        model.fuse()
    elif variant in ("optimized", "compiled"):
        model = netcfg.optimize(model, compile=variant == "compiled")
    with torch.inference_mode():
        return median_seconds(lambda: model(x))


def forward_over_generated(cfg: str, weights: str, pairs: int = 10) -> float:
    """The eager network's forward time over the generated module's: the median ratio of calls
    interleaved in one process, each pair in alternating order (fresh processes differ by more than
    the 2% this ratio is judged by)."""
    model = build(cfg, weights)
    generated = generated_module(cfg, SIZE.get("width", 0)).eval()
    generated.load_state_dict(model.state_dict())
    x = _input(model)
    ratios = []
    with torch.inference_mode():
        model(x), generated(x)  # warm-up
        for pair in range(pairs):
            if pair % 2:
                b, a = once(lambda: generated(x)), once(lambda: model(x))
            else:
                a, b = once(lambda: model(x)), once(lambda: generated(x))
            ratios.append(a / b)
    return statistics.median(ratios)


def opencv_forward(cfg: str, weights: str, threads: int) -> float:
    import cv2

    cv2.setNumThreads(threads)
    net = cv2.dnn.readNetFromDarknet(cfg, weights)
    blob = _input(build(cfg)).numpy()
    names = net.getUnconnectedOutLayersNames()

    def run() -> object:
        net.setInput(blob)
        return net.forward(names)

    return median_seconds(run)


def onnxruntime_forward(cfg: str, onnx_path: str, threads: int) -> float:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: _input(build(cfg)).numpy()}
    return median_seconds(lambda: session.run(None, feed))


def build_load_forward(cfg: str, weights: str) -> float:
    """Build + load + one forward: the figure whose peak memory is quoted."""

    def run() -> None:
        model = build(cfg, weights)
        with torch.inference_mode():
            model(_input(model))

    return once(run)


def convolution_floor(cfg: str, side: int = 2048) -> float:
    """About the least time the network's convolutions take on this machine in float32 without fewer
    operations (Winograd, FFT): their multiply-adds at the rate of a large square `torch.mm`, which
    the best direct convolutions reach and pass by a few per cent."""
    flops = sum(measure_bflops(build(cfg))) * 1e9
    a = torch.randn(side, side)
    return flops / (2 * side**3 / median_seconds(lambda: torch.mm(a, a)))


def deep_cfg(layers: int) -> str:
    """A cfg of `layers` small convolutions, for the per-layer cost of parse + build."""
    return "[net]\nwidth=8\nheight=8\nchannels=4\n" + "[convolutional]\nfilters=4\nsize=1\nactivation=leaky\n" * layers


FIGURES: dict[str, Callable[[str, str, int, str], float]] = {
    "forward": lambda c, w, t, o: netcfg_forward(c, w, "eager"),
    "forward-fused": lambda c, w, t, o: netcfg_forward(c, w, "fused"),
    "forward-optimized": lambda c, w, t, o: netcfg_forward(c, w, "optimized"),
    "forward-compiled": lambda c, w, t, o: netcfg_forward(c, w, "compiled"),
    "forward-generated": lambda c, w, t, o: netcfg_forward(c, w, "generated"),
    "forward-opencv": lambda c, w, t, o: opencv_forward(c, w, t),
    "forward-over-generated": lambda c, w, t, o: forward_over_generated(c, w),
    "forward-onnxruntime": lambda c, w, t, o: onnxruntime_forward(c, o, t),
    "convolution-floor": lambda c, w, t, o: convolution_floor(c),
    "build": lambda c, w, t, o: once(lambda: build(c)),
    "build-load": lambda c, w, t, o: once(lambda: build(c, w)),
    "load-opencv": lambda c, w, t, o: once(lambda: __import__("cv2").dnn.readNetFromDarknet(c, w)),
    "parse": lambda c, w, t, o: median_seconds(lambda: netcfg.parse(c), repeats=20),
    "deep-parse-build": lambda c, w, t, o: once(lambda: netcfg.build(deep_cfg(int(c)))),
    "build-load-forward": lambda c, w, t, o: build_load_forward(c, w),
}


def peak_mib() -> float:
    """This process's peak resident memory in MiB (Linux `VmHWM`), or NaN where there is none."""
    status = Path("/proc/self/status")
    if not status.exists():
        return float("nan")
    line = next((row for row in status.read_text().splitlines() if row.startswith("VmHWM:")), None)
    return float(line.split()[1]) / 1024 if line else float("nan")


def main() -> None:
    figure, cfg, weights, threads, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    onnx_path = sys.argv[6] if len(sys.argv) > 6 else ""
    if size and figure not in ("deep-parse-build", "parse"):
        SIZE.update(width=size, height=size)
    torch.set_num_threads(threads)
    seconds = FIGURES[figure](cfg, weights, threads, onnx_path)
    peak = peak_mib()
    print(f"{seconds:.6f} {peak:.1f}")


if __name__ == "__main__":
    main()
