"""`detect` and `classify`: images in, darknet's detections or top classes out."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..errors import NetcfgError
from ..network import Network
from . import boxes as b
from .images import ImageInput, as_list, classifier_image, letterbox_image, load_image, resize_image
from .names import DONT_SHOW, Names, class_names

#: Images run through the network together; more are run in several batches to bound memory.
BATCH = 8


@dataclass(frozen=True)
class Detection:
    """One detected object: `box` (x1, y1, x2, y2) in the original image's pixels, the head's objectness,
    the class and its score (objectness · class probability, as darknet's `prob`)."""

    box: tuple[float, float, float, float]
    objectness: float
    class_id: int
    class_name: str
    score: float


@dataclass(frozen=True)
class Prediction:
    """One of a classifier's top classes: its index, name and the network's output for it."""

    class_id: int
    class_name: str
    probability: float


@dataclass(frozen=True)
class Heads:
    """The detection heads darknet's get_network_boxes reads, and the NMS its `detector test` runs."""

    layers: tuple[tuple[int, str], ...]
    classes: int
    nms_kind: str
    beta_nms: float


def detection_heads(model: Network) -> Heads:
    """Every head layer (in layer order); the NMS kind and beta of the last [yolo]/[Gaussian_yolo]/[region]."""
    layers = tuple(
        (layer.index, layer.section.type_name) for layer in model.spec.layers if layer.section.type_name in b.HEAD_TYPES
    )
    if not layers:
        raise NetcfgError(
            f"{model.spec.file}: no detection head ([yolo], [Gaussian_yolo], [region] or [detection]) to read "
            "boxes from; for a classifier use netcfg predict / netcfg.classify"
        )
    sections = [model.spec.layers[i].section for i, _ in layers]
    if len({s.classes for s in sections}) > 1:
        found = ", ".join(f"layer {i}: {s.classes}" for (i, _), s in zip(layers, sections))
        raise NetcfgError(f"{model.spec.file}: the detection heads have different classes= ({found})")
    for (i, kind), section in zip(layers, sections):
        if kind == "region" and "tree" in section.extras:
            raise NetcfgError(f"{model.spec.file}: layer {i} [region] tree= needs darknet's tree file to score classes")
    last = next((s for (_, kind), s in zip(reversed(layers), reversed(sections)) if kind != "detection"), None)
    return Heads(layers, sections[0].classes, getattr(last, "nms_kind", "default"), getattr(last, "beta_nms", 0.6))


def check_fraction(name: str, value: float) -> None:
    """A NetcfgError unless the threshold `name` is within [0, 1]."""
    if not 0 <= value <= 1:
        raise NetcfgError(f"{name}={value}: must be between 0 and 1")


def _run(model: Network, inputs: list[torch.Tensor], return_layers: Sequence[int] | None = None):
    """The network in eval mode without gradients on a batch, on its parameters' device and dtype."""
    reference = next((t for t in model.state_dict().values() if t.is_floating_point()), None)
    x = torch.stack(inputs)
    if reference is not None:
        x = x.to(device=reference.device, dtype=reference.dtype)
    training = model.training
    try:
        with torch.no_grad():
            model.eval()
            return x, (model(x) if return_layers is None else model(x, return_layers=list(return_layers)))
    finally:
        model.train(training)


def detect(
    model: Network,
    images: ImageInput | Sequence[ImageInput],
    *,
    thresh: float = 0.25,
    hier_thresh: float = 0.5,
    nms: float = 0.45,
    names: Names = None,
    run: Callable[[torch.Tensor], Sequence] | None = None,
) -> list[list[Detection]]:
    """darknet's `detector test` on each image: letterboxed or resized to the input per `[net] letter_box`,
    boxes from every head scored above `thresh`, mapped back to the image, per-class NMS at `nms` (0: none)
    of the last head's `nms_kind`, clipped to the image; per image, best score first. `hier_thresh` is
    darknet's YOLO9000 tree threshold: accepted for its signature, read by no head netcfg decodes.
    `run`, when given, computes what `model(x)` returns in eval mode (the decoded heads, as tensors or
    arrays) in the model's place: a scripted network or an exported one under onnxruntime."""
    for name, value in (("thresh", thresh), ("hier_thresh", hier_thresh), ("nms", nms)):
        check_fraction(name, value)
    heads = detection_heads(model)
    labels = class_names(names, heads.classes)
    channels, net_h, net_w = model.spec.input_shape
    letter = bool(getattr(model.spec.net, "letter_box", False))
    pictures = [load_image(image, channels) for image in as_list(images)]
    if not pictures:
        return []
    fit = letterbox_image if letter else resize_image
    results = []
    for start in range(0, len(pictures), BATCH):
        chunk = pictures[start : start + BATCH]
        decoded = _decoded(model, heads, [fit(p, net_w, net_h) for p in chunk], run)
        for n, picture in enumerate(chunk):
            parts = [b.candidates(kind, rows[n], net_w, net_h, thresh) for kind, rows in decoded]
            found = functools.reduce(b.Candidates.cat, parts)
            height, width = picture.shape[-2:]
            found = found.with_boxes(b.correct_boxes(found.boxes, width, height, net_w, net_h, letter))
            scores = b.suppress(found, nms, heads.nms_kind, heads.beta_nms)
            results.append(_detections(found, scores, b.pixel_corners(found.boxes, width, height), labels))
    return results


def _decoded(
    model: Network, heads: Heads, inputs: list[torch.Tensor], run: Callable[[torch.Tensor], Sequence] | None
) -> list[tuple[str, torch.Tensor]]:
    """Each head's decoded rows (B, N, columns) on the CPU: from the model's layers, or picked out of
    `run(x)` by the network's output order (every head must be an output there)."""
    if run is None:
        x, outputs = _run(model, inputs, [i for i, _ in heads.layers])
        return [(kind, model.layers[i].decode(outputs[i], x).cpu()) for i, kind in heads.layers]
    with torch.no_grad():
        outputs = run(torch.stack(inputs))
    order = model.spec.outputs
    if isinstance(outputs, torch.Tensor) or len(outputs) != len(order):
        raise NetcfgError(f"run(x) must return the network's {len(order)} outputs, as model(x) in eval mode")
    by_layer = dict(zip(order, outputs))
    missing = [i for i, _ in heads.layers if i not in by_layer]
    if missing:
        raise NetcfgError(f"layers {missing} are detection heads but not network outputs: run cannot give them")
    return [(kind, torch.as_tensor(by_layer[i]).cpu()) for i, kind in heads.layers]


def _detections(found: b.Candidates, scores: torch.Tensor, corners: torch.Tensor, labels: list[str]) -> list[Detection]:
    """Every (box, class) whose score survived, best first; classes named dont_show are left out, as darknet."""
    rows, classes = torch.nonzero(scores > 0, as_tuple=True)
    values = scores[rows, classes]
    order = torch.argsort(values, descending=True, stable=True)
    rows, classes, values = rows[order], classes[order], values[order]
    return [
        Detection(tuple(box), objectness, k, labels[k], score)
        for box, objectness, k, score in zip(
            corners[rows].tolist(), found.objectness[rows].tolist(), classes.tolist(), values.tolist()
        )
        if not labels[k].startswith(DONT_SHOW)
    ]


def check_classifier(model: Network, top: int) -> None:
    """A NetcfgError unless `model` is a network without detection heads and `top` is at least 1."""
    if any(layer.section.type_name in b.HEAD_TYPES for layer in model.spec.layers):
        raise NetcfgError(f"{model.spec.file}: a detection network; use netcfg detect / netcfg.detect")
    if top < 1:
        raise NetcfgError(f"top={top}: must be at least 1")


def classify(
    model: Network, images: ImageInput | Sequence[ImageInput], *, top: int = 5, names: Names = None
) -> list[list[Prediction]]:
    """darknet's `classifier predict` on each image: resize_min to the input width, centre crop, the
    network's output (probabilities when the last layer is [softmax]) and its `top` largest classes."""
    check_classifier(model, top)
    channels, net_h, net_w = model.spec.input_shape
    pictures = [load_image(image, channels) for image in as_list(images)]
    if not pictures:
        return []
    _, output = _run(model, [classifier_image(p, net_w, net_h) for p in pictures])
    if not isinstance(output, torch.Tensor):
        raise NetcfgError(f"{model.spec.file}: the network has {len(output)} outputs; a classifier has one")
    values = output.float().flatten(1)
    labels = class_names(names, values.shape[1])
    best = torch.topk(values, min(top, values.shape[1]), dim=1)
    return [
        [Prediction(k, labels[k], p) for k, p in zip(indices, probabilities)]
        for indices, probabilities in zip(best.indices.tolist(), best.values.tolist())
    ]
