"""How many floats darknet's load_weights_upto reads for a cfg: parser.c's shape rules and the
per-layer counts of load_convolutional_weights, load_connected_weights and the recurrent layers,
transcribed from the C on the cfg text alone (never netcfg), for the `.weights` size checks."""

from __future__ import annotations

import re
from collections.abc import Callable

Shape = tuple[int, int, int]  # c, h, w
Options = dict[str, str]

#: A version 0.2.5 header: major, minor, revision (int32) and seen (uint64).
HEADER_BYTES = 20


def read_cfg(text: str) -> list[tuple[str, Options]]:
    """darknet's read_cfg: whitespace stripped, '#' and ';' lines skipped, the first value of a key wins."""
    sections: list[tuple[str, Options]] = []
    for raw in text.splitlines():
        line = "".join(raw.split())
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            sections.append((line[1 : line.index("]")], {}))
        elif "=" in line and sections:
            key, value = line.split("=", 1)
            sections[-1][1].setdefault(key, value)
    return sections


def atoi(text: str) -> int:
    """C's atoi: the leading integer, so `180###P6` (an inline comment) reads 180."""
    match = re.match(r"[+-]?\d+", text)
    return int(match.group()) if match else 0


def num(options: Options, key: str, default: int) -> int:
    return atoi(options[key]) if key in options else default


def conv_floats(c: int, n: int, size: int, groups: int, bn: bool) -> int:
    """load_convolutional_weights: biases n, [scales, rolling mean, rolling variance], (c/groups)·n·size² weights."""
    return n + (3 * n if bn else 0) + (c // groups) * n * size * size


def connected_floats(inputs: int, outputs: int, bn: bool) -> int:
    """load_connected_weights: biases, inputs·outputs weights, [scales, rolling mean, rolling variance]."""
    return outputs + inputs * outputs + (3 * outputs if bn else 0)


def _conv_out(o: Options, shape: Shape, size: int) -> tuple[int, int]:
    """convolutional_out_height/width: (h + 2·pad − size)/stride + 1, pad = size/2 with pad=1."""
    _, h, w = shape
    stride = num(o, "stride", 1)
    sy, sx = num(o, "stride_y", -1), num(o, "stride_x", -1)
    sy, sx = (sy if sy >= 1 else stride), (sx if sx >= 1 else stride)
    pad = size // 2 if num(o, "pad", 0) else num(o, "padding", 0)
    return (h + 2 * pad - size) // sy + 1, (w + 2 * pad - size) // sx + 1


def _convolutional(o: Options, shape: Shape, shapes: list[Shape]) -> tuple[Shape, int]:
    size, n = num(o, "size", 1), num(o, "filters", 1)
    bn = bool(num(o, "batch_normalize", 0))
    floats = 0 if "share_index" in o else conv_floats(shape[0], n, size, num(o, "groups", 1), bn)
    return (n, *_conv_out(o, shape, size)), floats


def _crnn(o: Options, shape: Shape, shapes: list[Shape]) -> tuple[Shape, int]:
    size, hidden, n = num(o, "size", 3), num(o, "hidden", 1), num(o, "output", 1)
    groups, bn = num(o, "groups", 1), bool(num(o, "batch_normalize", 0))
    pairs = [(shape[0], hidden), (hidden, hidden), (hidden, n)]
    return (n, *_conv_out(o, shape, size)), sum(conv_floats(a, b, size, groups, bn) for a, b in pairs)


def _conv_lstm(o: Options, shape: Shape, shapes: list[Shape]) -> tuple[Shape, int]:
    """vf, vi, vo (peephole), wf (reading 2·output with bottleneck), wi, wg, wo (without), uf..uo."""
    size, n = num(o, "size", 3), num(o, "output", 1)
    groups, bn = num(o, "groups", 1), bool(num(o, "batch_normalize", 0))
    peephole = [n] * 3 if num(o, "peephole", 0) else []
    w = [2 * n] if num(o, "bottleneck", 0) else [n] * 4
    reads = peephole + w + [shape[0]] * 4
    return (n, *_conv_out(o, shape, size)), sum(conv_floats(c, n, size, groups, bn) for c in reads)


def _local(o: Options, shape: Shape, shapes: list[Shape]) -> tuple[Shape, int]:
    """local_out_height: (h − (pad ? 1 : size))/stride + 1; biases per output, size²·c·n per location."""
    c, h, w = shape
    n, size, stride = num(o, "filters", 1), num(o, "size", 1), num(o, "stride", 1)
    cut = 1 if num(o, "pad", 0) else size
    oh, ow = (h - cut) // stride + 1, (w - cut) // stride + 1
    return (n, oh, ow), n * oh * ow + size * size * c * n * oh * ow


def _flat_inputs(shape: Shape) -> int:
    c, h, w = shape
    return c * h * w


def _connected(o: Options, shape: Shape, shapes: list[Shape]) -> tuple[Shape, int]:
    n = num(o, "output", 1)
    return (n, 1, 1), connected_floats(_flat_inputs(shape), n, bool(num(o, "batch_normalize", 0)))


def _rnn(o: Options, shape: Shape, shapes: list[Shape]) -> tuple[Shape, int]:
    hidden, n, bn = num(o, "hidden", 1), num(o, "output", 1), bool(num(o, "batch_normalize", 0))
    pairs = [(_flat_inputs(shape), hidden), (hidden, hidden), (hidden, n)]
    return (n, 1, 1), sum(connected_floats(a, b, bn) for a, b in pairs)


def _gru(o: Options, shape: Shape, shapes: list[Shape]) -> tuple[Shape, int]:
    n, bn = num(o, "output", 1), bool(num(o, "batch_normalize", 0))
    return (n, 1, 1), 3 * connected_floats(_flat_inputs(shape), n, bn) + 3 * connected_floats(n, n, bn)


def _lstm(o: Options, shape: Shape, shapes: list[Shape]) -> tuple[Shape, int]:
    n, bn = num(o, "output", 1), bool(num(o, "batch_normalize", 0))
    return (n, 1, 1), 4 * connected_floats(n, n, bn) + 4 * connected_floats(_flat_inputs(shape), n, bn)


def _shortcut(o: Options, shape: Shape, shapes: list[Shape]) -> tuple[Shape, int]:
    """make_shortcut_layer: per_feature (n + 1) weights, per_channel (n + 1)·c; the previous layer's shape."""
    inputs = len(o["from"].split(","))
    kind = o.get("weights_type", "none")
    floats = {"per_feature": inputs + 1, "per_layer": inputs + 1, "per_channel": (inputs + 1) * shape[0]}
    return shape, floats.get(kind, 0)


def _implicit(o: Options, shape: Shape, shapes: list[Shape]) -> tuple[Shape, int]:
    n = num(o, "filters", 128)
    return (n, 1, 1), n * num(o, "atoms", 1)


def _pool(o: Options, shape: Shape, shapes: list[Shape]) -> tuple[Shape, int]:
    """make_maxpool_layer: (h + padding − size)/stride + 1, padding size − 1 by default; maxpool_depth keeps h×w."""
    c, h, w = shape
    stride = num(o, "stride", 1)
    sy, sx = num(o, "stride_y", stride), num(o, "stride_x", stride)
    size = num(o, "size", stride)
    padding = num(o, "padding", size - 1)
    if num(o, "maxpool_depth", 0):
        return (num(o, "out_channels", 1), h, w), 0
    return (c, (h + padding - size) // sy + 1, (w + padding - size) // sx + 1), 0


def _upsample(o: Options, shape: Shape, shapes: list[Shape]) -> tuple[Shape, int]:
    c, h, w = shape
    s = num(o, "stride", 2)
    return ((c, h // -s, w // -s) if s < 0 else (c, h * s, w * s)), 0


def _reorg(o: Options, shape: Shape, shapes: list[Shape]) -> tuple[Shape, int]:
    c, h, w = shape
    s = num(o, "stride", 1)
    return ((c // (s * s), h * s, w * s) if num(o, "reverse", 0) else (c * s * s, h // s, w // s)), 0


def _at(shapes: list[Shape], ref: str) -> Shape:
    index = atoi(ref)
    return shapes[index if index >= 0 else len(shapes) + index]


def _route(o: Options, shape: Shape, shapes: list[Shape]) -> tuple[Shape, int]:
    picked = [_at(shapes, ref) for ref in o["layers"].split(",")]
    return (sum(p[0] for p in picked) // num(o, "groups", 1), picked[0][1], picked[0][2]), 0


def _from_layer(o: Options, shape: Shape, shapes: list[Shape]) -> tuple[Shape, int]:
    return _at(shapes, o["from"]), 0


LAYERS: dict[str, Callable[[Options, Shape, list[Shape]], tuple[Shape, int]]] = {
    "convolutional": _convolutional,
    "conv": _convolutional,
    "crnn": _crnn,
    "conv_lstm": _conv_lstm,
    "local": _local,
    "connected": _connected,
    "rnn": _rnn,
    "gru": _gru,
    "lstm": _lstm,
    "shortcut": _shortcut,
    "implicit": _implicit,
    "maxpool": _pool,
    "local_avgpool": _pool,
    "avgpool": lambda o, shape, shapes: ((shape[0], 1, 1), 0),
    "upsample": _upsample,
    "reorg": _reorg,
    "reorg3d": _reorg,
    "route": _route,
    "scale_channels": _from_layer,
    "sam": _from_layer,
    "crop": lambda o, shape, shapes: ((shape[0], num(o, "crop_height", 1), num(o, "crop_width", 1)), 0),
    "batchnorm": lambda o, shape, shapes: (shape, 4 * shape[0]),
    "history": lambda o, shape, shapes: ((shape[0] * num(o, "history_size", 4), *shape[1:]), 0),
}


def weight_floats(text: str, shape: Shape) -> list[int]:
    """The floats darknet reads for each layer of the cfg `text` built for a c×h×w input; layer types
    without weights (yolo, dropout, softmax, ...) keep the shape and read nothing."""
    shapes: list[Shape] = []
    floats = []
    for kind, options in read_cfg(text)[1:]:
        rule = LAYERS.get(kind, lambda o, s, ss: (s, 0))
        shape, count = rule(options, shape, shapes)
        shapes.append(shape)
        floats.append(count)
    return floats


def weights_file_bytes(text: str, shape: Shape) -> int:
    """The size of a complete darknet `.weights` file for this cfg at this input size."""
    return HEADER_BYTES + 4 * sum(weight_floats(text, shape))
