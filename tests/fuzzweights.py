"""Weights fuzz cases, shared by the tests and the campaign: a small network with every kind of darknet
tensor (conv with and without batch norm, shortcut weights, connected with batch norm), its valid file,
and mutations of that file. `run_weights` loads one into the network and allows only a WeightsError that
leaves the model untouched, or a load whose values are finite with non-negative variances."""

from __future__ import annotations

import functools
import os
import random
import struct
import tempfile
import warnings
from pathlib import Path

import torch

import netcfg

CFG = (
    "[net]\nwidth=6\nheight=6\nchannels=3\n"
    "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\npad=1\nactivation=leaky\n"
    "[convolutional]\nfilters=4\nsize=1\nactivation=linear\n"
    "[shortcut]\nfrom=-2\nweights_type=per_channel\n"
    "[connected]\noutput=5\nbatch_normalize=1\n"
)
HEADER = 20  # version 0.2.5: three int32 and a uint64 `seen`
# Float offsets after the header, in darknet's order: conv0 bias 4, scales 4, mean 4, variance 4, then weights.
VARIANCE = range(12, 16)
FLOAT_VALUES = [float("nan"), float("inf"), float("-inf"), -1.0, 3.4e38, -0.0]
VERSIONS = [0, 1, 2, 5, 999, 1000, 1001, 2**31 - 1, -1, 999_999, 1_000_000]


@functools.lru_cache(maxsize=1)
def model() -> netcfg.Network:
    """The network every weights case loads into (built once per process)."""
    torch.manual_seed(0)
    return netcfg.build(CFG)


@functools.lru_cache(maxsize=1)
def valid_file() -> bytes:
    """The network's own weights as darknet writes them."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "valid.weights"
        netcfg.save_darknet_weights(model(), path)
        return path.read_bytes()


def _put_float(data: bytearray, index: int, value: float) -> None:
    data[HEADER + 4 * index : HEADER + 4 * index + 4] = struct.pack("<f", value)


def mutated_file(rng: random.Random) -> tuple[str, bytes]:
    """A (kind, file bytes) mutation of the valid file: truncated, extended, header fields, bad floats,
    random bytes; `special` kinds (empty, folder, fifo) are made by `run_weights` itself."""
    data = bytearray(valid_file())
    floats = (len(data) - HEADER) // 4
    kind = rng.choice(["truncate", "extend", "header", "nan", "variance", "random", "flip", "special"])
    if kind == "truncate":
        del data[rng.randrange(len(data)) :]
    elif kind == "extend":
        data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
    elif kind == "header":
        field = rng.randrange(4)
        if field < 3:
            data[4 * field : 4 * field + 4] = struct.pack("<i", rng.choice(VERSIONS))
        else:
            data[12:20] = struct.pack("<Q", rng.choice([0, 1, 2**63, 2**64 - 1]))
    elif kind == "nan":
        _put_float(data, rng.randrange(floats), rng.choice(FLOAT_VALUES))
    elif kind == "variance":
        _put_float(data, rng.choice(VARIANCE), rng.choice([-1.0, -1e-30, float("nan"), float("inf")]))
    elif kind == "random":
        data = bytearray(rng.randrange(256) for _ in range(rng.choice([0, 3, 12, 16, 20, len(data), 4 * len(data)])))
    elif kind == "flip":
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    else:
        return rng.choice(["empty", "folder", "fifo"]), b""
    return kind, bytes(data)


def _write(folder: Path, kind: str, data: bytes) -> Path:
    path = folder / "case.weights"
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.write_bytes(data)
    return path


def _loaded_values_are_sound(network: netcfg.Network) -> None:
    for name, tensor in network.state_dict().items():
        if tensor.is_floating_point():
            assert bool(torch.isfinite(tensor).all()), f"{name} loaded non-finite values"
            if name.endswith("running_var"):
                assert bool((tensor >= 0).all()), f"{name} loaded negative variances"


def run_weights(case: tuple[str, bytes]) -> str:
    """Load one mutated file: `loaded`/`partial`, or `WeightsError` with the model untouched."""
    kind, data = case
    network = model()
    before = {name: t.clone() for name, t in network.state_dict().items()}
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            netcfg.load_darknet_weights(network, _write(Path(folder), kind, data))
        except netcfg.WeightsError as exc:
            assert str(exc), "empty WeightsError"
            after = network.state_dict()
            changed = [name for name, t in before.items() if not torch.equal(t, after[name])]
            assert not changed, f"a failed load changed {changed}"
            return "WeightsError"
    _loaded_values_are_sound(network)
    network.load_state_dict(before)
    partial = any(issubclass(w.category, netcfg.PartialWeightsWarning) for w in caught)
    return "partial" if partial else "loaded"
