"""Shared by the OpenCV tests: netcfg against OpenCV's darknet importer, an independent
implementation of the same format.

Both read the same seeded random `.weights` (scaled so activations stay finite and depend on the
input) and the same input; their outputs must agree to a relative error of 1e-4 (measured against
the largest magnitude of each output). OpenCV folds batch norm with eps 1e-6 where darknet uses
1e-5, so OpenCV reads a copy whose rolling variances are raised by 9e-6.

What is compared: the input of every `[yolo]`/`[region]` head (the raw predictions), then each
head's output decoded by its `decode` against OpenCV's region output after converting layouts (OpenCV orders rows
row, column, anchor; normalises boxes by the network size; multiplies class scores by objectness
and zeroes those below its threshold). Networks without heads: the last layer and, when that is
a `[softmax]`, its input. Intermediate layers are not compared: OpenCV hands back stale buffers
for layers whose output it writes straight into a later concat or fuses into a later sum.

OpenCV's importer ignores or changes some darknet keys (see `opencv_differences`): such networks
are skipped with the reason, as are networks OpenCV refuses (with OpenCV's own message).
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import netcfg
from netcfg.spec import Spec

cv2 = pytest.importorskip("cv2")
cv2.setNumThreads(1)

TOLERANCE = 1e-4
OPENCV_VARIANCE_SHIFT = np.float32(9e-6)
#: Calibrated variances below this are raised to it: a near-constant channel would otherwise be
#: amplified ~300× and turn float rounding into visible differences.
VARIANCE_FLOOR = 1e-2
#: OpenCV layer types that apply a darknet layer's activation (they belong to that layer).
OPENCV_ACTIVATIONS = {"ReLU", "ReLU6", "Swish", "Mish", "Sigmoid", "TanH", "ELU", "HardSwish", "GELU", "Power"}
HEADS = ("yolo", "region", "Gaussian_yolo")


# ---------------------------------------------------------------- random weights


def _owners(module: nn.Module) -> dict[int, tuple[nn.Module, str]]:
    """Tensor id → (the submodule holding it, its attribute name)."""
    owners = {}
    for sub in module.modules():
        for name, tensor in [*sub.named_parameters(recurse=False), *sub.named_buffers(recurse=False)]:
            owners[id(tensor)] = (sub, name)
    return owners


#: (mean, standard deviation) of the random values by role; convolution and connected weights are
#: He-scaled instead. Batch-norm statistics are then calibrated (`calibrate_batch_norm`); its scales
#: and shifts keep most pre-activations positive, so deep networks stay mostly linear: differences
#: of float rounding stay small instead of growing layer after layer.
DISTRIBUTIONS = {
    "bn.weight": (0.5, 0.1),
    "bn.bias": (0.5, 0.1),
    "bn.running_mean": (0.0, 0.1),
    "bn.running_var": (1.0, 0.0),
    "bias": (0.0, 0.1),
    "other": (1.0, 0.2),
}


def _role(owner: nn.Module, name: str, shape: torch.Size) -> str:
    if isinstance(owner, nn.modules.batchnorm._BatchNorm):
        return f"bn.{name}"
    if name == "weight" and len(shape) >= 2:
        return "weight"
    return "bias" if name == "bias" else "other"


def file_layout(model: netcfg.Network) -> list[tuple[torch.Tensor, str, slice]]:
    """Every tensor a `.weights` file holds for `model`: the tensor, its role, its floats in the file."""
    layout, start = [], 0
    for module in model.layers:
        if hasattr(module, "darknet_tensors"):
            owners = _owners(module)
            for tensor in module.darknet_tensors():
                role = _role(*owners[id(tensor)], tensor.shape)
                layout.append((tensor, role, slice(start, start + tensor.numel())))
                start += tensor.numel()
    return layout


def randomize(model: netcfg.Network, seed: int) -> None:
    """Fill every tensor the `.weights` file holds with seeded random values for its role."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor, role, _ in file_layout(model):
            mean, std = (0.0, np.sqrt(2 / tensor[0].numel())) if role == "weight" else DISTRIBUTIONS[role]
            tensor.normal_(mean, std, generator=generator)


def write_weights(path: Path, values: np.ndarray) -> Path:
    with path.open("wb") as f:
        f.write(struct.pack("<iiiQ", 0, 2, 5, 0))
        values.astype("<f4", copy=False).tofile(f)
    return path


# ---------------------------------------------------------------- OpenCV


def opencv_differences(spec: Spec) -> str | None:
    """Why OpenCV's importer cannot reproduce darknet for this network, if it cannot."""
    for layer in spec.layers:
        s, kind = layer.section, layer.section.type_name
        where = f"layer {layer.index} [{kind}]"
        if kind == "convolutional":
            if s.effective_dilation > 1:
                return f"{where}: OpenCV ignores dilation"
            if s.strides[0] != s.strides[1]:
                return f"{where}: OpenCV ignores stride_x/stride_y"
            if s.antialiasing:
                return f"{where}: OpenCV ignores antialiasing"
            if s.binary or s.xnor:
                return f"{where}: OpenCV ignores binary/xnor"
        if kind == "maxpool" and (s.strides[0] != s.strides[1] or s.maxpool_depth or s.antialiasing):
            return f"{where}: OpenCV ignores stride_x/stride_y, maxpool_depth and antialiasing"
        if kind == "shortcut" and (len(s.from_) > 1 or s.weights_type != "none"):
            return f"{where}: OpenCV adds only the first `from` layer and ignores weights_type"
        if kind == "upsample" and s.scale != 1:
            return f"{where}: OpenCV ignores the upsample scale"
        if kind == "crop" and not s.noadjust:
            return f"{where}: OpenCV misplaces the weights after a [crop] without noadjust=1"
        if kind == "connected" and s.batch_normalize:
            return f"{where}: OpenCV's batch norm after a fully connected layer outputs NaN"
        if kind == "route" and s.groups > 1 and len(s.layers) > 1:
            return f"{where}: OpenCV slices only the first input when groups > 1 (darknet slices each)"
    return None


def softmax_matches_opencv(spec: Spec, index: int) -> bool:
    """OpenCV's softmax runs over channels without temperature; darknet's over C·H·W / temperature."""
    section = spec.layers[index].section
    _, h, w = spec.layers[index].input_shapes[0]
    return section.temperature == 1 and h * w == 1


def opencv_names(net) -> dict[int, str]:
    """Darknet layer index → the OpenCV layer holding its output (the last one it created)."""
    names: dict[int, str] = {}
    current = None
    for name in net.getLayerNames():
        suffix = re.search(r"_(\d+)$", name)
        if suffix and net.getLayer(name).type not in OPENCV_ACTIVATIONS:
            current = int(suffix.group(1))
        if current is not None:
            names[current] = name
    return names


def opencv_parses(cfg: Path) -> None:
    """Skip early (before making weights) when OpenCV refuses the cfg itself."""
    try:
        cv2.dnn.readNetFromDarknet(str(cfg))
    except cv2.error as exc:
        pytest.skip(f"OpenCV refuses it: {opencv_message(exc)}")


def opencv_net(cfg: Path, weights: Path):
    """OpenCV's network with every layer created, or a skip carrying OpenCV's reason."""
    try:
        net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
        for name in net.getLayerNames():
            net.getLayer(name)
    except cv2.error as exc:
        pytest.skip(f"OpenCV refuses it: {opencv_message(exc)}")
    return net


def opencv_forward(net, x: np.ndarray, names: list[str]) -> list[np.ndarray]:
    """OpenCV's outputs for a batch, one image at a time (its scale_channels fails on batches)."""
    per_image = []
    for image in x:
        net.setInput(image[None])
        try:
            per_image.append(net.forward(names))
        except cv2.error as exc:
            pytest.skip(f"OpenCV cannot run it: {opencv_message(exc)}")
    return [np.stack(outputs) for outputs in zip(*per_image)]


def opencv_message(exc: Exception) -> str:
    lines = [line for line in str(exc).splitlines() if "error:" in line]
    return (lines[0] if lines else str(exc)).split("error:", 1)[-1].strip()


# ---------------------------------------------------------------- comparison


def compared_layers(spec: Spec) -> list[int]:
    """The head inputs; without heads the last layer (and a final softmax's input)."""
    heads = [layer.index for layer in spec.layers if layer.section.type_name in HEADS]
    if heads:
        return [spec.layers[i].sources[0] for i in heads]
    last = spec.layers[-1]
    if last.section.type_name != "softmax":
        return [last.index]
    return [last.sources[0], last.index] if softmax_matches_opencv(spec, last.index) else [last.sources[0]]


def assert_close(ours: np.ndarray, theirs: np.ndarray, what: str) -> None:
    assert ours.size == theirs.size, f"{what}: netcfg {ours.shape}, OpenCV {theirs.shape}"
    ours = ours.reshape(theirs.shape)
    scale = float(np.abs(theirs).max())
    error = float(np.abs(ours - theirs).max()) / scale
    assert np.isfinite(ours).all() and scale > 0, f"{what}: output is not finite and non-zero"
    assert error <= TOLERANCE, f"{what}: relative error {error:.3g} > {TOLERANCE} (largest |value| {scale:.3g})"


def assert_depends_on_input(output: np.ndarray, what: str) -> None:
    """The two images of the batch give clearly different outputs: the weights are not degenerate."""
    spread = float(np.abs(output[0] - output[1]).max())
    assert spread > 100 * TOLERANCE * float(np.abs(output).max()), f"{what}: output barely depends on the input"


def opencv_layout(model: netcfg.Network, index: int, output: np.ndarray, x: np.ndarray) -> np.ndarray:
    """netcfg's head output decoded against the input `x` (B, A·H·W, 5+C), in OpenCV's region layout
    (B, H·W·A, 5+C) with boxes relative to the input size."""
    decoded = model.layers[index].decode(torch.from_numpy(output), torch.from_numpy(x)).numpy()
    _, h, w = model.spec.layers[index].shape
    b, n, k = decoded.shape
    rows = decoded.reshape(b, n // (h * w), h, w, k).transpose(0, 2, 3, 1, 4).reshape(b, n, k)
    size = np.array([x.shape[3], x.shape[2]] * 2, dtype=np.float32)
    objectness = rows[..., 4:5]
    return np.concatenate([rows[..., :4] / size, objectness, rows[..., 5:] * objectness], axis=-1)


def assert_decoding_matches(
    model: netcfg.Network, index: int, ours: np.ndarray, theirs: np.ndarray, x: np.ndarray
) -> None:
    """Boxes and objectness agree; class scores agree where OpenCV kept them. For `[yolo]` those
    it zeroed (below its threshold) are no larger than any it kept; for `[region]` OpenCV also
    runs its own non-maximum suppression (nms_threshold 0.4), which zeroes others too."""
    what = f"layer {index} [{model.spec.layers[index].section.type_name}] decoded"
    expected = opencv_layout(model, index, ours, x)
    theirs = theirs.reshape(expected.shape)
    for column, name in enumerate(("x", "y", "w", "h", "objectness")):
        assert_close(expected[..., column], theirs[..., column], f"{what} {name}")
    ours_cls, theirs_cls = expected[..., 5:], theirs[..., 5:]
    kept = theirs_cls != 0
    if kept.any():
        assert_close(ours_cls[kept], theirs_cls[kept], f"{what} class scores")
    if model.spec.layers[index].section.type_name == "yolo" and kept.any() and (~kept).any():
        assert ours_cls[~kept].max() <= ours_cls[kept].min() + TOLERANCE, f"{what}: zeroed scores above kept ones"


def sample_images(spec: Spec, seed: int) -> np.ndarray:
    """Two random images; the second darker, so even global statistics differ between them."""
    c, h, w = spec.input_shape
    x = np.random.default_rng(seed).uniform(0, 1, (2, c, h, w)).astype(np.float32)
    x[1] **= 3
    return x


def calibrate_batch_norm(model: netcfg.Network, x: np.ndarray) -> None:
    """Set every batch norm's rolling mean and variance to its input's statistics on `x`, as
    training leaves them: activations then keep their scale (and their dependence on the input)
    at any depth, whatever the random weights."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    with torch.no_grad():
        model(torch.from_numpy(x))
    for bn in norms:
        bn.running_var.clamp_(min=VARIANCE_FLOOR)
        bn.eval()


def compare_with_opencv(cfg_text: str, tmp_path: Path, seed: int = 0) -> None:
    """Build with netcfg and OpenCV from the same cfg and random weights; outputs must agree."""
    cfg = tmp_path / "net.cfg"
    cfg.write_text(cfg_text)
    opencv_parses(cfg)
    model = netcfg.build(cfg_text)
    reason = opencv_differences(model.spec)
    if reason:
        pytest.skip(reason)
    randomize(model, seed)
    calibrate_batch_norm(model, sample_images(model.spec, seed + 1))
    netcfg.save_darknet_weights(model, tmp_path / "netcfg.weights")
    assert netcfg.load_darknet_weights(model, tmp_path / "netcfg.weights") == len(model.layers)
    values = np.fromfile(tmp_path / "netcfg.weights", dtype="<f4", offset=20)
    for _, role, part in file_layout(model):
        if role == "bn.running_var":
            values[part] += OPENCV_VARIANCE_SHIFT
    net = opencv_net(cfg, write_weights(tmp_path / "opencv.weights", values))
    del values
    names = opencv_names(net)
    layers = compared_layers(model.spec)
    heads = [layer.index for layer in model.spec.layers if layer.section.type_name in HEADS]
    x = sample_images(model.spec, seed + 2)
    theirs = dict(zip(layers + heads, opencv_forward(net, x, [names[i] for i in layers + heads])))
    with torch.no_grad():
        ours = {i: t.numpy() for i, t in model(torch.from_numpy(x), return_layers=layers + heads).items()}
    for i in layers:
        kind = model.spec.layers[i].section.type_name
        assert_close(ours[i], theirs[i], f"layer {i} [{kind}]")
        if kind != "softmax":  # a saturated softmax may rightly give both images the same class
            assert_depends_on_input(ours[i], f"layer {i} [{kind}]")
    for i in heads:
        assert_decoding_matches(model, i, ours[i], theirs[i], x)


# ---------------------------------------------------------------- cfg text


def with_net_size(text: str, width: int, height: int) -> str:
    """The cfg with `[net]` width and height replaced (added when missing)."""
    sections = re.split(r"(?m)^(?=[ \t]*\[)", text.replace("\r\n", "\n"))
    for i, section in enumerate(sections):
        if re.match(r"[ \t]*\[[ \t]*(net|network)[ \t]*\]", section):
            body = re.sub(r"(?m)^[ \t]*(width|height)[ \t]*=.*$", "", section)
            sections[i] = body.rstrip("\n") + f"\nwidth={width}\nheight={height}\n\n"
            break
    return "".join(sections)
