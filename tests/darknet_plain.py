"""A validated spec rewritten with darknet's own sections only, where an exact equivalent exists.

`[include]`s are already inlined by the spec; `[spp]`, `[se]` (sigmoid gate), `[bottleneck]` and a
nearest `[resize]` by an integer factor become the maxpool/route/convolutional/scale_channels/
shortcut/upsample layers computing the same thing. References are rewritten as absolute indices; a
leading identity `[maxpool] size=1` gives the network input one.
`plain_darknet` also returns which plain state-dict key holds each of the spec's weights.
"""

from __future__ import annotations

from collections.abc import Callable

from netcfg.spec import NETWORK_INPUT, LayerSpec, Spec

#: Sections whose raw keys darknet reads with the same meaning (references rewritten).
DARKNET_TYPES = {
    "convolutional",
    "maxpool",
    "local_avgpool",
    "avgpool",
    "route",
    "shortcut",
    "upsample",
    "connected",
    "dropout",
    "softmax",
    "scale_channels",
    "sam",
    "yolo",
    "region",
    "reorg",
    "lrn",
    "activation",
    "batchnorm",
    "crop",
    "empty",
}
REFERENCE_KEYS = {"route": "layers", "shortcut": "from", "scale_channels": "from", "sam": "from"}


class NotPlain(Exception):
    """The spec uses a section without an exact darknet equivalent."""


class _Writer:
    """Plain sections in order, with each spec layer's last plain index and the weight key map."""

    def __init__(self) -> None:
        self.sections: list[str] = []
        self.last: dict[int, int] = {NETWORK_INPUT: self.add("maxpool", size=1, stride=1)}
        self.keys: dict[str, str] = {}

    def add(self, kind: str, **keys: object) -> int:
        self.sections.append(f"[{kind}]\n" + "".join(f"{k}={v}\n" for k, v in keys.items()))
        return len(self.sections) - 1

    def ref(self, source: int) -> int:
        return self.last[source]

    def weights(self, layer: int, parts: dict[str, tuple[int, str]], names: list[str]) -> None:
        """Map `layers.<layer>.<part>.<name>` to `layers.<plain index>.<prefix>.<name>` for each part."""
        for part, (index, prefix) in parts.items():
            for name in names:
                self.keys[f"layers.{layer}.{part}.{name}"] = f"layers.{index}.{prefix}.{name}"


BN = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]


def _darknet(w: _Writer, layer: LayerSpec, model_keys: list[str]) -> None:
    options = {k: o.value for k, o in layer.raw.options.items()}
    kind = layer.section.type_name
    if kind in REFERENCE_KEYS:
        refs = layer.sources if kind == "route" else layer.sources[1:]
        options[REFERENCE_KEYS[kind]] = ",".join(str(w.ref(s)) for s in refs)
    index = w.add(kind, **options)
    for key in model_keys:
        w.keys[key] = key.replace(f"layers.{layer.index}.", f"layers.{index}.", 1)


def _spp(w: _Writer, layer: LayerSpec) -> None:
    source, pooled = w.ref(layer.sources[0]), {}
    for size in sorted(set(layer.section.sizes)):
        if len(w.sections) - 1 != source:
            w.add("route", layers=source)
        pooled[size] = w.add("maxpool", size=size, stride=1)
    w.add("route", layers=",".join(str(pooled[s]) for s in layer.section.output_order) + f",{source}")


def _se(w: _Writer, layer: LayerSpec) -> None:
    s = layer.section
    if s.gate != "sigmoid":
        raise NotPlain("[se] gate=hard_sigmoid has no darknet activation")
    source = w.ref(layer.sources[0])
    hidden = max(1, layer.shape[0] // s.reduction)
    w.add("avgpool")
    fc1 = w.add("convolutional", filters=hidden, size=1, activation=s.activation)
    fc2 = w.add("convolutional", filters=layer.shape[0], size=1, activation="logistic")
    w.add("scale_channels", **{"from": source})
    w.weights(layer.index, {"fc1": (fc1, "conv"), "fc2": (fc2, "conv")}, ["weight", "bias"])


def _bottleneck(w: _Writer, layer: LayerSpec) -> None:
    s, source = layer.section, w.ref(layer.sources[0])
    conv = dict(batch_normalize=1, pad=1)
    parts = {
        "conv1": w.add("convolutional", filters=s.width, size=1, activation="relu", **conv),
        "conv2": w.add(
            "convolutional", filters=s.width, size=3, stride=s.stride, groups=s.groups, activation="relu", **conv
        ),
        "conv3": w.add("convolutional", filters=s.filters, size=1, activation="linear", **conv),
    }
    if s.stride != 1 or layer.input_shapes[0][0] != s.filters:
        w.add("route", layers=source)
        parts["downsample"] = w.add(
            "convolutional", filters=s.filters, size=1, stride=s.stride, activation="linear", **conv
        )
        source = parts["conv3"]
    w.add("shortcut", **{"from": source, "activation": "relu"})
    for part, index in parts.items():
        w.weights(layer.index, {f"{part}.conv": (index, "conv")}, ["weight"])
        w.weights(layer.index, {f"{part}.bn": (index, "bn")}, BN)


def _resize(w: _Writer, layer: LayerSpec) -> None:
    (_, h, wd), (_, th, tw) = layer.input_shapes
    if layer.section.mode != "nearest" or th % h or tw % wd or th // h != tw // wd:
        raise NotPlain(f"[resize] {h}×{wd} → {th}×{tw} ({layer.section.mode}) is no darknet upsample")
    w.add("upsample", stride=th // h)


EXPANSIONS: dict[str, Callable[[_Writer, LayerSpec], None]] = {
    "spp": _spp,
    "se": _se,
    "bottleneck": _bottleneck,
    "resize": _resize,
}


def plain_darknet(spec: Spec, state_keys: list[str]) -> tuple[str, dict[str, str]]:
    """(cfg text of darknet sections only, spec state-dict key → plain key); NotPlain when impossible."""
    w = _Writer()
    for layer in spec.layers:
        kind = layer.section.type_name
        if kind in DARKNET_TYPES:
            _darknet(w, layer, [k for k in state_keys if k.startswith(f"layers.{layer.index}.")])
        elif kind in EXPANSIONS:
            EXPANSIONS[kind](w, layer)
        else:
            raise NotPlain(f"[{kind}] has no exact darknet equivalent")
        w.last[layer.index] = len(w.sections) - 1
    c, h, width = spec.input_shape
    return f"[net]\nwidth={width}\nheight={h}\nchannels={c}\n\n" + "\n".join(w.sections), w.keys
