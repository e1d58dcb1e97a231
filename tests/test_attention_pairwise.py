"""Attention between positions (`[nonlocal]`, `[cc]`, `[fan]`): numbers against recomputations one
position pair at a time or against the official block, and fresh blocks being the identity."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from attentionkit import bn, build, randomized


def nonlocal_reference(x: torch.Tensor, sd: dict, mode: str, sub_sample: bool, with_bn: bool) -> torch.Tensor:
    """Wang et al.'s z_i = W·(1/C(x)) Σ_j f(x_i, x_j) g(x_j) + x_i, one position pair at a time."""
    b, c, h, w = x.shape
    theta = x if mode == "gaussian" else F.conv2d(x, sd["theta.weight"], sd["theta.bias"])
    phi = x if mode == "gaussian" else F.conv2d(x, sd["phi.weight"], sd.get("phi.bias"))
    g = F.conv2d(x, sd["g.weight"], sd["g.bias"])
    if sub_sample:
        phi, g = F.max_pool2d(phi, 2), F.max_pool2d(g, 2)
    th, ph, gg = theta.flatten(2), phi.flatten(2), g.flatten(2)
    n, m = th.shape[2], ph.shape[2]
    y = torch.zeros(b, gg.shape[1], n)
    for bi in range(b):
        for i in range(n):
            if mode == "concat":
                wf = sd["concat.weight"].flatten()
                pairs = [torch.cat([th[bi, :, i], ph[bi, :, j]]) for j in range(m)]
                f = torch.stack([F.relu(wf @ pair) for pair in pairs]) / m
            else:
                energy = torch.stack([th[bi, :, i] @ ph[bi, :, j] for j in range(m)])
                f = energy / m if mode == "dot" else torch.exp(energy) / torch.exp(energy).sum()
            y[bi, :, i] = sum(f[j] * gg[bi, :, j] for j in range(m))
    z = F.conv2d(y.reshape(b, -1, h, w), sd["out.conv.weight"], sd.get("out.conv.bias"))
    return x + (bn(z, sd, "out.bn") if with_bn else z)


NONLOCAL_CASES = [
    (mode, sub, bn_) for mode in ("embedded_gaussian", "gaussian", "dot", "concat") for sub, bn_ in ((1, 1), (0, 0))
]


@pytest.mark.parametrize(("mode", "sub_sample", "with_bn"), NONLOCAL_CASES)
def test_nonlocal_numbers(mode, sub_sample, with_bn):
    body = f"[nonlocal]\nmode={mode}\nsub_sample={sub_sample}\nbn={with_bn}\n"
    model, sd, x = randomized(body, c=4, h=4, w=4)
    x = x * 0.5
    expected = nonlocal_reference(x, sd, mode, bool(sub_sample), bool(with_bn))
    torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("mode", "sub_sample", "with_bn"), NONLOCAL_CASES)
def test_fresh_nonlocal_is_exactly_the_identity(mode, sub_sample, with_bn):
    model = build(f"[nonlocal]\nmode={mode}\nsub_sample={sub_sample}\nbn={with_bn}\n", h=5, w=7)
    x = torch.randn(2, 8, 5, 7)
    assert torch.equal(model(x), x)


def criss_cross_reference(x: torch.Tensor, sd: dict) -> torch.Tensor:
    """One criss-cross step, pixel by pixel: keys are the column without the centre, then the row."""
    b, c, h, w = x.shape
    q = F.conv2d(x, sd["query.weight"], sd["query.bias"])
    k = F.conv2d(x, sd["key.weight"])
    v = F.conv2d(x, sd["value.weight"], sd["value.bias"])
    out = torch.zeros_like(x)
    for bi in range(b):
        for i in range(h):
            for j in range(w):
                where = [(r, j) for r in range(h) if r != i] + [(i, col) for col in range(w)]
                energy = torch.stack([q[bi, :, i, j] @ k[bi, :, r, col] for r, col in where])
                weights = torch.softmax(energy, 0)
                out[bi, :, i, j] = sum(a * v[bi, :, r, col] for a, (r, col) in zip(weights, where))
    return x + sd["gamma"] * out


@pytest.mark.parametrize("recurrence", [1, 2])
def test_cc_numbers(recurrence):
    model, sd, x = randomized(f"[cc]\nrecurrence={recurrence}\n", c=8, h=3, w=4)
    expected = x
    for _ in range(recurrence):
        expected = criss_cross_reference(expected, sd)
    torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-5)


def test_fresh_cc_is_exactly_the_identity():
    x = torch.randn(2, 8, 5, 7)
    assert torch.equal(build("[cc]\n", h=5, w=7)(x), x)


def fan_token_mixing(u: torch.Tensor, sd: dict, heads: int) -> torch.Tensor:
    """FAN's TokenMixing (NVlabs/FAN fan.py): qkv reshaped (3, B, heads, N, d), softmax(q kᵀ·d^-½) v, proj."""
    b, n, c = u.shape
    qkv = F.linear(u, sd["qkv.weight"], sd.get("qkv.bias")).reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    attn = (q @ k.transpose(-2, -1) * (c // heads) ** -0.5).softmax(dim=-1)
    return F.linear((attn @ v).transpose(1, 2).reshape(b, n, c), sd["proj.weight"], sd["proj.bias"])


def fan_channel_processing(u: torch.Tensor, sd: dict, heads: int) -> torch.Tensor:
    """FAN's ChannelProcessing: attn = σ(softmax_N(q)ᵀ @ avgpool_d(softmax_N(k)))·temperature with
    k = u per head, gating norm_v(mlp_v(u)); netcfg's mlp_v has no depth-wise conv (documented)."""
    b, n, c = u.shape
    per_head = (b, n, heads, c // heads)
    q = F.linear(u, sd["q.weight"], sd.get("q.bias")).reshape(per_head).permute(0, 2, 1, 3)
    k = u.reshape(per_head).permute(0, 2, 1, 3)
    k = F.adaptive_avg_pool2d(k.softmax(-2), (n, 1))
    attn = torch.sigmoid(q.softmax(-2).transpose(-1, -2) @ k) * sd["temperature"]
    hidden = F.gelu(F.linear(u, sd["mlp.0.weight"], sd["mlp.0.bias"]))
    v = F.linear(hidden, sd["mlp.2.weight"], sd["mlp.2.bias"])
    v = F.layer_norm(v, (c,), sd["norm_v.weight"], sd["norm_v.bias"])
    v = v.reshape(per_head).transpose(1, 2)
    return (attn * v.transpose(-1, -2)).permute(0, 3, 1, 2).reshape(b, n, c)


def fan_reference(x: torch.Tensor, sd: dict, heads: int) -> torch.Tensor:
    """FAN's FANBlock.forward on the H·W tokens, with layer scale γ = eta = 1 and no drop path."""
    b, c, h, w = x.shape
    t = x.flatten(2).transpose(1, 2)
    gamma1 = gamma2 = torch.ones(c, dtype=x.dtype)
    t = t + gamma1 * fan_token_mixing(F.layer_norm(t, (c,), sd["norm1.weight"], sd["norm1.bias"]), sd, heads)
    t = t + gamma2 * fan_channel_processing(F.layer_norm(t, (c,), sd["norm2.weight"], sd["norm2.bias"]), sd, heads)
    return t.transpose(1, 2).reshape(b, c, h, w)


@pytest.mark.parametrize("heads, mlp_ratio, c", [(2, 1.5, 8), (4, 2, 8), (1, 1, 6)])
def test_fan_matches_the_official_block(heads, mlp_ratio, c):
    model, sd, x = randomized(f"[fan]\nheads={heads}\nmlp_ratio={mlp_ratio}\n", c=c, h=3, w=5)
    model, x = model.double(), x.double()
    sd = {k: v.double() for k, v in sd.items()}
    with torch.no_grad():
        torch.testing.assert_close(model(x), fan_reference(x, sd, heads), rtol=1e-10, atol=1e-10)
