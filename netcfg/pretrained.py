"""State dicts from the PyTorch ecosystem: torchvision's parameter names mapped onto a built Network.

Two torchvision layouts are recognised from the network's own layers:
- ResNet (`[bottleneck]`/`[basicblock]` present): the first convolution is `conv1`/`bn1`, block j of
  stage i is `layer{i}.{j}` (a stage starts at the first block and at every block with a projection
  shortcut), inside it `conv{k}`/`bn{k}` and `downsample.0`/`.1`; the fully connected layer is `fc`.
  Layers after the last block other than a fully connected one (an FPN's, a detector's) have no
  counterpart: the backbone loads, they keep their initialisation (a PartialWeightsWarning names
  them), and a state dict's `fc.*` is left unused when the network has no classifier.
- Sequential (VGG): layers up to the pooling before the classifier are `features.N`, the rest
  `classifier.N`, where N counts torch modules as torchvision's `nn.Sequential` does (a convolution,
  its batch norm and its activation are one module each; a max pool or dropout is one).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping

import torch
from torch import nn

from .errors import WeightsError
from .modules.backbone import BasicBlock, Bottleneck
from .network import Network
from .weights import PartialWeightsWarning

LAYOUTS = ("torchvision",)
_LEAVES = (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d)
_STEM = {"conv": "conv1", "bn": "bn1"}
_FC = {"linear": "fc"}
_BLOCK = {
    "conv1.conv": "conv1",
    "conv1.bn": "bn1",
    "conv2.conv": "conv2",
    "conv2.bn": "bn2",
    "conv3.conv": "conv3",
    "conv3.bn": "bn3",
    "downsample.conv": "downsample.0",
    "downsample.bn": "downsample.1",
}
#: Sections ending torchvision's `features`: what follows is `classifier`.
_CLASSIFIER_STARTS_AFTER = ("adaptive_avgpool", "avgpool")
_SKIPPED_WHEN_MISSING = "num_batches_tracked"
#: The state dict's classifier, unused when the network ends in layers other than a classifier.
_CLASSIFIER = "fc."


def load_state_dict_from(
    model: Network, state_dict: Mapping[str, torch.Tensor], layout: str = "torchvision"
) -> tuple[int, ...]:
    """Load a state dict named as in `layout` (torchvision's resnet/vgg) into `model`, or raise
    WeightsError listing every missing, unexpected and mis-shaped key; nothing is loaded then.
    Returns the parameterised layers it has no counterpart for (after a ResNet backbone), which
    keep their initialisation; a PartialWeightsWarning names them."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    ours = model.state_dict()
    theirs_of = torchvision_names(model)
    uncovered = uncovered_layers(model)
    expected = {theirs_of[key]: key for key in ours if key in theirs_of}
    has_classifier = any(t.startswith(_CLASSIFIER) for t in expected)
    missing = [t for t in expected if t not in state_dict and not t.endswith(_SKIPPED_WHEN_MISSING)]
    unused = [t for t in state_dict if t not in expected and uncovered and not has_classifier and _is_classifier(t)]
    unexpected = [t for t in state_dict if t not in expected and t not in unused]
    mis_shaped = [
        f"{t} is {tuple(state_dict[t].shape)} in the state dict, {tuple(ours[key].shape)} in the network"
        for t, key in expected.items()
        if t in state_dict and state_dict[t].shape != ours[key].shape
    ]
    problems = [
        _listing("missing keys", missing),
        _listing("unexpected keys", unexpected),
        _listing("shape mismatches", mis_shaped),
    ]
    if any(problems):
        raise WeightsError(f"the state dict does not fit ({layout} layout): " + "; ".join(p for p in problems if p))
    model.load_state_dict({key: state_dict[t] for t, key in expected.items() if t in state_dict}, strict=False)
    if uncovered:
        _warn_uncovered(model, uncovered, unused)
    return uncovered


def _is_classifier(key: str) -> bool:
    return key.startswith(_CLASSIFIER)


def _warn_uncovered(model: Network, uncovered: tuple[int, ...], unused: list[str]) -> None:
    """The PartialWeightsWarning for a backbone-only load."""
    sections = ", ".join(f"{i} [{model.spec.layers[i].section.type_name}]" for i in uncovered)
    rest = f"; unused from the state dict: {', '.join(unused)}" if unused else ""
    message = f"loaded the torchvision backbone; layers {sections} have no counterpart and keep their initialisation"
    warnings.warn(message + rest, PartialWeightsWarning, stacklevel=3)


def uncovered_layers(model: Network) -> tuple[int, ...]:
    """The parameterised layers that `layout="torchvision"` leaves alone: a ResNet's after its last block
    other than the fully connected classifier."""
    return tuple(sorted({index for index, _ in _resnet_tail(model)})) if _is_resnet(model) else ()


def _is_resnet(model: Network) -> bool:
    return any(isinstance(m, (Bottleneck, BasicBlock)) for m in model.layers)


def _resnet_tail(model: Network) -> Iterator[tuple[int, str]]:
    """(layer index, leaf path) of the parameterised layers after the last block that are not `fc`."""
    last_block = max(i for i, m in enumerate(model.layers) if isinstance(m, (Bottleneck, BasicBlock)))
    for index in range(last_block + 1, len(model.layers)):
        leaves = [path for path, _ in _leaves(model.layers[index])]
        if leaves and leaves != ["linear"]:
            yield from ((index, path) for path in leaves)


def _listing(what: str, items: list[str], shown: int = 5) -> str:
    if not items:
        return ""
    more = f", … and {len(items) - shown} more" if len(items) > shown else ""
    return f"{what} ({len(items)}): {', '.join(items[:shown])}{more}"


def torchvision_names(model: Network) -> dict[str, str]:
    """Every key of `model.state_dict()` → its torchvision name, but for `uncovered_layers`'."""
    prefixes = _resnet_prefixes(model) if _is_resnet(model) else _sequential_prefixes(model)
    names = {}
    for index, module in enumerate(model.layers):
        for path, leaf in _leaves(module):
            prefix = prefixes.get((index, path))
            if prefix is None:
                continue
            for key in leaf.state_dict():
                names[f"layers.{index}.{path}.{key}"] = f"{prefix}.{key}"
    return names


def _leaves(module: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """The parameter-holding torch modules inside a layer, in order, with their paths."""
    for path, sub in module.named_modules():
        if isinstance(sub, _LEAVES):
            yield path, sub


def _unmapped(model: Network, index: int, layout: str) -> WeightsError:
    section = model.spec.layers[index].section.type_name
    return WeightsError(f"layer {index} [{section}] has no counterpart in torchvision's {layout} layout")


def _resnet_prefixes(model: Network) -> dict[tuple[int, str], str]:
    """(layer index, leaf path) → torchvision module name, for ResNets."""
    names: dict[tuple[int, str], str] = {}
    stage, block, stem_seen = 0, 0, False
    tail = {index for index, _ in _resnet_tail(model)}
    for index, module in enumerate(model.layers):
        if index in tail:
            continue
        if isinstance(module, (Bottleneck, BasicBlock)):
            stage, block = (stage + 1, 0) if module.downsample is not None or stage == 0 else (stage, block + 1)
            table = {path: f"layer{stage}.{block}.{name}" for path, name in _BLOCK.items()}
        elif any(True for _ in _leaves(module)):
            table = _FC if stem_seen else _STEM
            stem_seen = True
        else:
            continue
        for path, _ in _leaves(module):
            if path not in table:
                raise _unmapped(model, index, "resnet")
            names[index, path] = table[path]
    return names


def _sequential_prefixes(model: Network) -> dict[tuple[int, str], str]:
    """(layer index, leaf path) → `features.N` / `classifier.N`, for VGG-style sequential networks."""
    names: dict[tuple[int, str], str] = {}
    part, position = "features", 0
    for index, module in enumerate(model.layers):
        section = model.spec.layers[index].section
        leaves = [path for path, _ in _leaves(module)]
        if any(path not in ("conv", "bn", "linear") for path in leaves):
            raise _unmapped(model, index, "sequential (VGG)")
        for offset, path in enumerate(leaves):
            names[index, path] = f"{part}.{position + offset}"
        position += max(len(leaves), 1) + (getattr(section, "activation", "linear") != "linear")
        if section.type_name in _CLASSIFIER_STARTS_AFTER:
            part, position = "classifier", 0
    return names
