"""Shared by the export tests: seeded non-trivial weights, and many networks exported as one ONNX
graph (the exporter's fixed cost, several seconds a call, is paid once) then compared output by
output with onnxruntime."""

from __future__ import annotations

import onnxruntime
import torch
from torch import nn

import netcfg
from netcfg.export.onnx import export_module
from netcfg.export.parity import Parity, compare

#: float32 through a deep random network: onnxruntime's kernels round differently from torch's.
ATOL_SCALE, RTOL = 1e-4, 1e-3


def seeded(model: netcfg.Network, seed: int = 0) -> netcfg.Network:
    """`model` with seeded noise on every tensor (10% of its own spread, 0.01 where it is constant, so
    deep networks keep their scale) and batch-norm variances in [0.5, 1.5], in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
                continue
            spread = float(tensor.std()) if tensor.numel() > 1 else 0.0
            tensor.add_(max(0.1 * spread, 0.01) * torch.randn(tensor.shape, generator=gen))
    return model.eval().reset_state()


class Together(nn.Module):
    """Several networks side by side: input k goes to network k; outputs flattened in order."""

    def __init__(self, networks: list[nn.Module]):
        super().__init__()
        self.networks = nn.ModuleList(networks)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = []
        for network, x in zip(self.networks, inputs):
            out = network(x)
            outputs.extend(out if isinstance(out, (list, tuple)) else [out])
        return tuple(outputs)


def outputs_of(network: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The network's outputs for `x` from a fresh recurrent state, as a list."""
    if isinstance(network, netcfg.Network):
        network.reset_state()
    with torch.no_grad():
        out = network(x)
    return list(out) if isinstance(out, (list, tuple)) else [out]


def parity_each(networks: dict[str, nn.Module], inputs: dict[str, torch.Tensor]) -> dict[str, Parity]:
    """Export `networks` as one graph (unoptimised: onnxscript's optimiser costs as much as the export
    on a graph this large, and export_onnx's own tests run it); each network's Parity, by name."""
    names = list(networks)
    together = Together([networks[n] for n in names])
    examples = tuple(inputs[n] for n in names)
    input_names = [f"x{k}" for k in range(len(names))]
    onnx_model = export_module(together, examples, input_names, optimize=False)
    for network in networks.values():
        if isinstance(network, netcfg.Network):
            network.reset_state()
    session = onnxruntime.InferenceSession(onnx_model, providers=["CPUExecutionProvider"])
    got = session.run(None, {k: x.numpy() for k, x in zip(input_names, examples)})
    result, start = {}, 0
    for name in names:
        want = [w.detach().numpy() for w in outputs_of(networks[name], inputs[name])]
        result[name] = compare(tuple(inputs[name].shape), want, got[start : start + len(want)])
        start += len(want)
    assert start == len(got), f"onnxruntime returned {len(got)} outputs, the networks {start}"
    return result


def tolerance(network: nn.Module, x: torch.Tensor) -> float:
    """The absolute tolerance for `network`'s outputs: ATOL_SCALE × (1 + their largest magnitude)."""
    largest = max((float(o.detach().abs().max()) for o in outputs_of(network, x) if o.numel()), default=0.0)
    return ATOL_SCALE * (1 + largest)
