"""Shared by the code generation tests: small cfgs, and generated modules imported from files and
compared with `netcfg.build` by state_dict and by outputs."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import torch
from torch import nn

import netcfg
from netcfg.codegen import to_python
from netcfg.registry import section_types
from netcfg.section import EXAMPLE_NET

REPO = Path(__file__).resolve().parents[1]
SHARED_CFGS = REPO.parent / "shared" / "darknet-cfg"  # as in conftest.py
LAYER_TYPES = [t for t in section_types() if t.name not in ("net", "network")]

TINY = """
[net]
width=32
height=32
channels=3
# 0
[convolutional]
filters=8
size=3
pad=1
batch_normalize=1
activation=leaky
[convolutional]
filters=8
size=1
batch_normalize=1
activation=mish
# 2: plain shortcut -> `+`
[shortcut]
from=-2
# 3: grouped route -> torch.cat of chunks
[route]
layers=-1,-3
groups=2
group_id=1
[convolutional]
filters=4
size=1
activation=swish
# 5: channel mismatch and activation -> module call
[shortcut]
from=0
activation=leaky
# 6: learned weights -> module call
[shortcut]
from=-2
weights_type=per_channel
weights_normalization=softmax
# 7: route of the previous layer, whose output nobody reads
[route]
layers=-1
# 8: single-input route -> alias
[route]
layers=1
[maxpool]
size=2
stride=2
[upsample]
stride=2
# 11: two-input route -> torch.cat
[route]
layers=-1,2
[convolutional]
filters=21
size=1
activation=linear
[yolo]
mask=0,1,2
anchors=4,5, 8,9, 12,10
num=3
classes=2
[route]
layers=5
[convolutional]
filters=21
size=3
stride=2
pad=1
activation=linear
[yolo]
mask=0,1,2
anchors=4,5, 8,9, 12,10
num=3
classes=2
"""

LABELLED = EXAMPLE_NET + (
    "[convolutional]\nfilters=8\nsize=1\n"
    "[convolutional]\nfilters=8\nsize=3\npad=1\nname=body\n"
    "[shortcut]\nfrom=-3\n"  # lands just before the first layer: the network input
    "[route]\nlayers=body,-1\n"
)


def load_class(source: str, directory: Path, stem: str = "generated", class_name: str = "Generated") -> type:
    """Import generated source from a file, as a user would."""
    path = directory / f"{stem}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"_codegen_{stem}_{abs(hash(str(directory)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, class_name)


def randomize(model: nn.Module, x: torch.Tensor, seed: int = 0) -> None:
    """Random, well-scaled weights everywhere (zero-initialised ones included, so no block is left an
    identity): matrices and kernels N(0, 1/fan_in), vectors and scalars U(0.5, 1.5); then batch-norm
    running statistics taken from `x`."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, t in weights(model):
            if t.dim() >= 2:
                t.copy_(torch.randn(t.shape, generator=generator) / t[0].numel() ** 0.5)
            else:
                t.copy_(torch.rand(t.shape, generator=generator) + 0.5)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in norms]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    with torch.no_grad():
        model(x)
    for bn, momentum in zip(norms, momenta):
        bn.momentum = momentum
    model.eval()


def weights(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Every parameter, and every persistent float buffer outside batch norms (a fixed weight such
    as RefConv's `base`), by state_dict key."""
    out = list(model.named_parameters())
    for prefix, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            continue
        for name, buffer in module.named_buffers(prefix=prefix, recurse=False):
            if name.rsplit(".", 1)[-1] not in module._non_persistent_buffers_set and buffer.is_floating_point():
                out.append((name, buffer))
    return out


def as_list(out) -> list[torch.Tensor]:
    return list(out) if isinstance(out, (list, tuple)) else [out]


def max_relative_error(expected: list[torch.Tensor], actual: list[torch.Tensor]) -> float:
    assert [e.shape for e in expected] == [a.shape for a in actual]
    for e in expected:
        assert torch.isfinite(e).all()
    return max(((e - a).abs().max() / e.abs().max().clamp_min(1e-30)).item() for e, a in zip(expected, actual))


def state_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def reference(spec: netcfg.Spec, seed: int = 0) -> tuple[nn.Module, torch.Tensor, list[torch.Tensor]]:
    """The built Network with randomised weights, an input and its outputs."""
    torch.manual_seed(seed)
    net = netcfg.build(spec)
    c, h, w = spec.input_shape
    x = torch.randn(2, c, h, w)
    randomize(net, x)
    with torch.no_grad():
        expected = as_list(net(x))
    return net, x, expected


def assert_equivalent(spec: netcfg.Spec, directory: Path, standalone: bool = False) -> nn.Module:
    """Generated module: same state_dict keys and shapes, same outputs after load_state_dict."""
    net, x, expected = reference(spec)
    generated = load_class(to_python(spec, class_name="Generated", standalone=standalone), directory)()
    assert state_shapes(generated) == state_shapes(net)
    generated.load_state_dict(net.state_dict())
    generated.eval()
    with torch.no_grad():
        out = generated(x)
        again = net(x)
    assert type(out) is type(again)
    assert max_relative_error(expected, as_list(out)) <= 1e-6
    return generated


def assert_imports_only(source: str, allowed: set[str]) -> None:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            assert {a.name.split(".")[0] for a in node.names} <= allowed
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module.split(".")[0] in allowed, ast.unparse(node)
