"""Forward-pass speed, run by hand: `python benchmarks/forward.py [cfg] [--size N]`.

Prints median times and ratios against baselines measured in the same run:
- `Network` (the plan-driven loop) vs the straight-line module `netcfg convert` writes for the same
  cfg, the closest thing to hand-written code;
- `Network.fuse()` vs the unfused network;
- `[dcn]` (pure PyTorch deformable conv) vs `[convolutional]` of the same size.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

import netcfg


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def generated_module(cfg: str, size: int = 0) -> torch.nn.Module:
    """Instantiate the class `netcfg convert` writes for `cfg` (size 0: the cfg's own), loaded from a
    temporary file that is gone once it is imported."""
    size_keys = {"width": size, "height": size} if size else {}
    source = netcfg.to_python(cfg, class_name="Generated", **size_keys)
    with tempfile.TemporaryDirectory(prefix="netcfg-generated-") as folder:
        path = Path(folder) / "generated_net.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location("generated_net", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module.Generated()


def compare(label: str, candidate: Callable[[], object], baseline: Callable[[], object], repeats: int) -> None:
    a, b = median_seconds(candidate, repeats), median_seconds(baseline, repeats)
    print(f"{label:<44} {a * 1e3:9.2f} ms  vs {b * 1e3:9.2f} ms   ratio {a / b:5.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cfg", nargs="?", default="yolov3-tiny")
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = netcfg.build(args.cfg, width=args.size, height=args.size).eval()
    generated = generated_module(args.cfg, args.size).eval()
    generated.load_state_dict(model.state_dict())
    x = torch.randn(1, model.spec.net.channels, args.size, args.size)
    print(f"{args.cfg} at {args.size}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    with torch.inference_mode():
        compare("Network / generated straight-line module", lambda: model(x), lambda: generated(x), args.repeats)
        fused = netcfg.build(args.cfg, width=args.size, height=args.size).eval()
        fused.load_state_dict(model.state_dict())
        fused.fuse()
        compare("Network.fuse() / unfused Network", lambda: fused(x), lambda: model(x), args.repeats)
        head = "[net]\nwidth=64\nheight=64\nchannels=64\n"
        keys = "filters=64\nsize=3\npad=1\nbatch_normalize=1\nactivation=leaky\n"
        dcn = netcfg.build(head + "[dcn]\n" + keys).eval()
        conv = netcfg.build(head + "[convolutional]\n" + keys).eval()
        y = torch.randn(1, 64, 64, 64)
        compare("[dcn] / [convolutional] (64ch, 64x64)", lambda: dcn(y), lambda: conv(y), args.repeats)


if __name__ == "__main__":
    main()
