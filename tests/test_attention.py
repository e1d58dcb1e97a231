"""Attention sections: shapes, numbers against independent recomputations, gradients, tracing, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import netcfg
from netcfg.registry import section_types

ATTENTION = sorted(t.name for t in section_types() if t.model.family == "attention")


def cfg(body: str, c: int = 8, h: int = 6, w: int = 6) -> str:
    return f"[net]\nwidth={w}\nheight={h}\nchannels={c}\n{body}"


def build(body: str, c: int = 8, h: int = 6, w: int = 6) -> netcfg.Network:
    return netcfg.build(cfg(body, c, h, w))


def randomize(module: torch.nn.Module, seed: int = 0) -> None:
    """Random weights everywhere (positive running variances), so no zero-initialised part hides."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=gen) * 0.5)


def randomized(body: str, c: int = 8, h: int = 6, w: int = 6, seed: int = 0):
    """(network, its only block's state dict, a random input)."""
    model = build(body, c, h, w)
    randomize(model, seed)
    x = torch.randn(2, c, h, w, generator=torch.Generator().manual_seed(seed + 1))
    return model, model.layers[0].state_dict(), x


def bn(x: torch.Tensor, sd: dict, prefix: str) -> torch.Tensor:
    """Eval-mode batch norm from a state dict (eps 1e-5)."""
    p = prefix + "."
    return F.batch_norm(
        x, sd[p + "running_mean"], sd[p + "running_var"], sd[p + "weight"], sd[p + "bias"], False, 0.0, 1e-5
    )


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(x + 3, 0, 6) / 6


# ---------------------------------------------------------------- shapes and widths

SHAPES = [
    ("[se]\n", (8, 6, 6), (8, 6, 6)),
    ("[cbam]\n", (16, 5, 7), (16, 5, 7)),
    ("[bam]\n", (16, 6, 6), (16, 6, 6)),
    ("[scse]\n", (8, 4, 6), (8, 4, 6)),
    ("[eca]\n", (8, 6, 6), (8, 6, 6)),
    ("[gc]\n", (8, 6, 6), (8, 6, 6)),
    ("[nonlocal]\n", (8, 5, 7), (8, 5, 7)),
    ("[cc]\n", (8, 5, 7), (8, 5, 7)),
    ("[sk]\ngroups=4\n", (8, 6, 6), (8, 6, 6)),
    ("[sk]\nfilters=12\ngroups=4\nstride=2\n", (8, 7, 6), (12, 4, 3)),
    ("[splat]\nfilters=6\nstride=2\n", (8, 7, 6), (6, 4, 3)),
    ("[splat]\nfilters=6\nsize=1\n", (8, 7, 6), (6, 7, 6)),
    ("[gam]\n", (8, 6, 6), (8, 6, 6)),
    ("[ca]\n", (8, 5, 7), (8, 5, 7)),
    ("[simam]\n", (8, 6, 6), (8, 6, 6)),
    ("[triplet]\n", (8, 5, 7), (8, 5, 7)),
    ("[fan]\n", (16, 3, 5), (16, 3, 5)),
]


@pytest.mark.parametrize(("body", "shape_in", "shape_out"), SHAPES, ids=[s[0].split("]")[0][1:] for s in SHAPES])
def test_inferred_shape_matches_the_output(body, shape_in, shape_out):
    model = build(body, *shape_in)
    assert model.spec.layers[0].shape == shape_out
    assert tuple(model(torch.randn(1, *shape_in)).shape[1:]) == shape_out


def test_every_attention_section_is_covered():
    covered = {body.split("]")[0][1:] for body, _, _ in SHAPES}
    assert covered == set(ATTENTION) and len(ATTENTION) == 15


@pytest.mark.parametrize(
    ("body", "c", "name", "shape"),
    [
        ("[se]\n", 8, "fc1.weight", (1, 8, 1, 1)),  # max(1, 8 // 16)
        ("[se]\nreduction=4\n", 8, "fc1.weight", (2, 8, 1, 1)),
        ("[cbam]\n", 64, "mlp.0.weight", (4, 64, 1, 1)),
        ("[bam]\nreduction=4\ndilation_convs=3\n", 16, "spatial.3.conv.weight", (4, 4, 3, 3)),
        ("[scse]\n", 8, "cse.fc1.weight", (4, 8, 1, 1)),
        ("[gc]\n", 64, "add.0.weight", (4, 64, 1, 1)),  # int(64 · 0.0625)
        ("[nonlocal]\nreduction=4\n", 16, "g.weight", (4, 16, 1, 1)),
        ("[cc]\n", 16, "query.weight", (2, 16, 1, 1)),  # C // 8
        ("[sk]\ngroups=4\nreduction=2\nmin_dim=3\n", 8, "squeeze.conv.weight", (4, 8, 1, 1)),  # max(8 // 2, 3)
        ("[sk]\ngroups=4\n", 8, "squeeze.conv.weight", (32, 8, 1, 1)),  # max(8 // 16, 32)
        ("[splat]\nfilters=8\n", 64, "fc1.conv.weight", (32, 8, 1, 1)),  # max(64·2 // 4, 32)
        ("[splat]\nfilters=8\n", 128, "fc1.conv.weight", (64, 8, 1, 1)),  # max(128·2 // 4, 32)
        ("[gam]\n", 8, "channel.0.weight", (2, 8)),
        ("[ca]\n", 8, "squeeze.conv.weight", (8, 8, 1, 1)),  # max(8, 8 // 32)
        ("[ca]\n", 512, "squeeze.conv.weight", (16, 512, 1, 1)),
        ("[fan]\nmlp_ratio=2\n", 8, "mlp.0.weight", (16, 8)),
    ],
)
def test_hidden_widths(body, c, name, shape):
    assert tuple(build(body, c, 4, 4).layers[0].state_dict()[name].shape) == shape


@pytest.mark.parametrize(("c", "k"), [(2, 1), (8, 3), (16, 3), (64, 3), (128, 5), (256, 5), (1024, 5), (2048, 7)])
def test_eca_adaptive_kernel(c, k):
    # t = int(|(log2 C + 1) / 2|), made odd: worked out by hand for each C above.
    assert build("[eca]\n", c, 2, 2).layers[0].conv.weight.shape[-1] == k
    assert build("[eca]\nk_size=9\n", c, 2, 2).layers[0].conv.weight.shape[-1] == 9


# ---------------------------------------------------------------- numbers


def se_reference(x: torch.Tensor, sd: dict, act, gate) -> torch.Tensor:
    s = x.mean((2, 3), keepdim=True)
    z = act(F.conv2d(s, sd["fc1.weight"], sd["fc1.bias"]))
    return x * gate(F.conv2d(z, sd["fc2.weight"], sd["fc2.bias"]))


@pytest.mark.parametrize(
    ("keys", "act", "gate"),
    [
        ("", F.relu, torch.sigmoid),
        ("activation=leaky\ngate=hard_sigmoid\n", lambda v: F.leaky_relu(v, 0.1), hard_sigmoid),
    ],
)
def test_se_numbers(keys, act, gate):
    model, sd, x = randomized("[se]\nreduction=2\n" + keys)
    torch.testing.assert_close(model(x), se_reference(x, sd, act, gate))


@pytest.mark.parametrize("gate", ["sigmoid", "hard_sigmoid"])
def test_se_with_zero_weights_halves_its_input(gate):
    model = build(f"[se]\ngate={gate}\n")
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    x = torch.randn(2, 8, 6, 6)
    assert torch.equal(model(x), x / 2)


def test_cbam_numbers():
    model, sd, x = randomized("[cbam]\nreduction=2\n", h=5, w=7)

    def mlp(v):
        return F.conv2d(F.relu(F.conv2d(v, sd["mlp.0.weight"])), sd["mlp.2.weight"])

    x1 = x * torch.sigmoid(mlp(x.mean((2, 3), keepdim=True)) + mlp(x.amax((2, 3), keepdim=True)))
    pooled = torch.cat([x1.mean(1, keepdim=True), x1.amax(1, keepdim=True)], 1)
    expected = x1 * torch.sigmoid(F.conv2d(pooled, sd["spatial.weight"], padding=3))
    torch.testing.assert_close(model(x), expected)


def test_cbam_synonym_spelling_gives_the_same_network():
    torch.manual_seed(3)
    canonical = build("[cbam]\nreduction=4\nkernel_size=3\n")
    torch.manual_seed(3)
    synonyms = build("[cbam]\nratio=4\nkernelsize=3\n")
    a, b = canonical.state_dict(), synonyms.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert b["layers.0.spatial.weight"].shape == (1, 2, 3, 3) and b["layers.0.mlp.0.weight"].shape == (2, 8, 1, 1)
    x = torch.randn(1, 8, 6, 6)
    assert torch.equal(canonical(x), synonyms(x))


@pytest.mark.parametrize("convs", [2, 0])
def test_bam_is_x_plus_x_times_the_gate_of_the_sum(convs):
    model, sd, x = randomized(f"[bam]\nreduction=4\ndilation=2\ndilation_convs={convs}\n", c=16)
    hidden = F.relu(F.conv2d(x.mean((2, 3), keepdim=True), sd["channel.0.conv.weight"], sd["channel.0.conv.bias"]))
    mc = bn(F.conv2d(hidden, sd["channel.1.conv.weight"]), sd, "channel.1.bn")
    s = F.relu(bn(F.conv2d(x, sd["spatial.0.conv.weight"]), sd, "spatial.0.bn"))
    for i in range(1, convs + 1):
        conv = F.conv2d(s, sd[f"spatial.{i}.conv.weight"], padding=2, dilation=2)
        s = F.relu(bn(conv, sd, f"spatial.{i}.bn"))
    ms = bn(F.conv2d(s, sd[f"spatial.{convs + 1}.conv.weight"]), sd, f"spatial.{convs + 1}.bn")
    torch.testing.assert_close(model(x), x + x * torch.sigmoid(mc + ms))


def test_scse_is_the_sum_of_channel_and_spatial_se():
    model, sd, x = randomized("[scse]\n")
    cse = se_reference(x, {k[4:]: v for k, v in sd.items() if k.startswith("cse.")}, F.relu, torch.sigmoid)
    sse = x * torch.sigmoid(F.conv2d(x, sd["sse.weight"]))
    torch.testing.assert_close(model(x), cse + sse)


def test_eca_numbers_by_explicit_channel_loop():
    model, sd, x = randomized("[eca]\nk_size=5\n")
    w = sd["conv.weight"].flatten()
    s = x.mean((2, 3))
    y = torch.zeros_like(s)
    for c in range(8):
        for j in range(5):
            src = c + j - 2
            if 0 <= src < 8:
                y[:, c] += w[j] * s[:, src]
    torch.testing.assert_close(model(x), x * torch.sigmoid(y)[:, :, None, None])


def gc_transform(ctx: torch.Tensor, sd: dict, p: str) -> torch.Tensor:
    t = F.conv2d(ctx, sd[p + "0.weight"], sd[p + "0.bias"])
    mean, var = t.mean(1, keepdim=True), t.var(1, unbiased=False, keepdim=True)
    t = (t - mean) / torch.sqrt(var + 1e-5) * sd[p + "1.weight"] + sd[p + "1.bias"]
    return F.conv2d(F.relu(t), sd[p + "3.weight"], sd[p + "3.bias"])


@pytest.mark.parametrize("pooling", ["att", "avg"])
def test_gc_numbers(pooling):
    model, sd, x = randomized(f"[gc]\nratio=0.5\npooling={pooling}\nfusion=mul, add\n")
    if pooling == "att":
        logits = torch.einsum("c,bchw->bhw", sd["mask.weight"].flatten(), x).flatten(1)
        ctx = (x.flatten(2) * logits.softmax(1)[:, None, :]).sum(2)[:, :, None, None]
    else:
        ctx = x.mean((2, 3), keepdim=True)
    expected = x * torch.sigmoid(gc_transform(ctx, sd, "mul.")) + gc_transform(ctx, sd, "add.")
    torch.testing.assert_close(model(x), expected)


@pytest.mark.parametrize(("fusion", "factor"), [("add", 1.0), ("mul", 0.5)])
def test_fresh_gc_is_the_identity_or_halves(fusion, factor):
    x = torch.randn(2, 8, 6, 6)
    assert torch.equal(build(f"[gc]\nfusion={fusion}\n")(x), x * factor)


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


def test_sk_numbers():
    model, sd, x = randomized("[sk]\nfilters=12\ngroups=4\nbranches=3\nstride=2\nmin_dim=5\n", h=7, w=6)
    feats = []
    for i in range(3):
        conv = F.conv2d(x, sd[f"branches.{i}.conv.weight"], stride=2, padding=i + 1, dilation=i + 1, groups=4)
        feats.append(F.relu(bn(conv, sd, f"branches.{i}.bn")))
    s = sum(feats).mean((2, 3), keepdim=True)
    z = F.relu(bn(F.conv2d(s, sd["squeeze.conv.weight"]), sd, "squeeze.bn"))
    logits = F.conv2d(z, sd["select.weight"], sd["select.bias"]).flatten(1)
    per_branch = torch.stack([logits[:, 12 * i : 12 * (i + 1)] for i in range(3)])
    weights = torch.exp(per_branch) / torch.exp(per_branch).sum(0)
    expected = sum(weights[i][:, :, None, None] * feats[i] for i in range(3))
    torch.testing.assert_close(model(x), expected)


@pytest.mark.parametrize(("groups", "radix"), [(2, 2), (1, 3), (2, 1)])
def test_splat_numbers(groups, radix):
    filters = 8
    body = f"[splat]\nfilters={filters}\ngroups={groups}\nradix={radix}\n"
    model, sd, x = randomized(body, c=12, h=5, w=5)
    u = F.conv2d(x, sd["conv.conv.weight"], padding=1, groups=groups * radix)
    u = F.relu(bn(u, sd, "conv.bn"))
    splits = [u[:, r * filters : (r + 1) * filters] for r in range(radix)]
    gap = sum(splits).mean((2, 3), keepdim=True)
    z = F.relu(bn(F.conv2d(gap, sd["fc1.conv.weight"], groups=groups), sd, "fc1.bn"))
    logits = F.conv2d(z, sd["fc2.weight"], sd["fc2.bias"], groups=groups).flatten(1)
    per_group = filters // groups
    weights = torch.zeros(2, radix, filters)
    for ch in range(filters):
        # ResNeSt's layout of fc2's outputs: (group, radix split, channel within the group).
        g, j = divmod(ch, per_group)
        idx = [g * radix * per_group + r * per_group + j for r in range(radix)]
        weights[:, :, ch] = torch.softmax(logits[:, idx], 1) if radix > 1 else torch.sigmoid(logits[:, idx])
    expected = sum(weights[:, r, :, None, None] * splits[r] for r in range(radix))
    torch.testing.assert_close(model(x), expected)


def test_gam_numbers():
    model, sd, x = randomized("[gam]\nrate=2\n", h=5, w=7)
    pixels = x.permute(0, 2, 3, 1)
    mlp = F.linear(F.relu(F.linear(pixels, sd["channel.0.weight"], sd["channel.0.bias"])), sd["channel.2.weight"])
    x1 = x * torch.sigmoid((mlp + sd["channel.2.bias"]).permute(0, 3, 1, 2))
    s = F.relu(bn(F.conv2d(x1, sd["spatial.0.conv.weight"], padding=3), sd, "spatial.0.bn"))
    s = bn(F.conv2d(s, sd["spatial.1.conv.weight"], padding=3), sd, "spatial.1.bn")
    torch.testing.assert_close(model(x), x1 * torch.sigmoid(s))


def test_ca_numbers():
    model, sd, x = randomized("[ca]\n", c=8, h=5, w=7)
    pooled = torch.cat([x.mean(3), x.mean(2)], 2).unsqueeze(3)  # (B, C, H + W, 1)
    y = bn(F.conv2d(pooled, sd["squeeze.conv.weight"]), sd, "squeeze.bn")
    y = y * torch.clamp(y + 3, 0, 6) / 6
    a_h = torch.sigmoid(F.conv2d(y[:, :, :5], sd["gate_h.weight"], sd["gate_h.bias"]))  # (B, C, H, 1)
    a_w = torch.sigmoid(F.conv2d(y[:, :, 5:], sd["gate_w.weight"], sd["gate_w.bias"]))  # (B, C, W, 1)
    torch.testing.assert_close(model(x), x * a_h * a_w.transpose(2, 3))


@pytest.mark.parametrize("lam", [None, 0.5])
def test_simam_closed_form(lam):
    body = "[simam]\n" + (f"lambda={lam}\n" if lam is not None else "")
    lam = 1e-4 if lam is None else lam
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    expected = torch.empty_like(x)
    for b in range(2):
        for c in range(3):
            t = x[b, c]
            m = t.numel()
            mu = t.sum() / m
            var = ((t - mu) ** 2).sum() / (m - 1)  # the authors' n = H·W − 1
            # minimal energy e* = 4(σ² + λ) / ((t − μ)² + 2σ² + 2λ); importance 1/e*, gated by sigmoid
            energy = 4 * (var + lam) / ((t - mu) ** 2 + 2 * var + 2 * lam)
            expected[b, c] = t / (1 + torch.exp(-1 / energy))
    model = build(body, 3, 4, 5).double()
    torch.testing.assert_close(model(x), expected)


@pytest.mark.parametrize("no_spatial", [0, 1])
def test_triplet_numbers(no_spatial):
    model, sd, x = randomized(f"[triplet]\nkernel_size=3\nno_spatial={no_spatial}\n", c=6, h=5, w=7)

    def gate(t, p):
        pooled = torch.cat([t.max(1, keepdim=True).values, t.mean(1, keepdim=True)], 1)
        return t * torch.sigmoid(bn(F.conv2d(pooled, sd[p + ".conv.conv.weight"], padding=1), sd, p + ".conv.bn"))

    branches = [gate(x.transpose(1, 2), "cw").transpose(1, 2), gate(x.transpose(1, 3), "hc").transpose(1, 3)]
    if not no_spatial:
        branches.append(gate(x, "hw"))
    torch.testing.assert_close(model(x), sum(branches) / len(branches))


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


# ---------------------------------------------------------------- gradients and tracing

VARIANTS = [
    "[se]\nreduction=2\ngate=hard_sigmoid\n",
    "[cbam]\nreduction=2\n",
    "[bam]\nreduction=4\ndilation=2\n",
    "[scse]\n",
    "[eca]\n",
    "[gc]\nratio=0.25\nfusion=add,mul\n",
    "[gc]\nratio=0.25\npooling=avg\nfusion=mul\n",
    "[nonlocal]\n",
    "[nonlocal]\nmode=gaussian\nbn=0\n",
    "[nonlocal]\nmode=dot\nsub_sample=0\n",
    "[nonlocal]\nmode=concat\n",
    "[cc]\n",
    "[sk]\ngroups=4\nstride=2\nmin_dim=4\n",
    "[splat]\nfilters=8\ngroups=2\n",
    "[splat]\nfilters=8\nradix=1\n",
    "[gam]\n",
    "[ca]\n",
    "[simam]\n",
    "[triplet]\n",
    "[triplet]\nno_spatial=1\n",
    "[fan]\nheads=4\n",
]


@pytest.mark.parametrize("body", VARIANTS)
def test_gradients_reach_every_parameter_and_the_input(body):
    model, _, x = randomized(body, c=16, h=6, w=6)
    model.train()
    x.requires_grad_(True)
    out = model(x)
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(5))).sum().backward()
    dead = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"no gradient reaches {dead}"
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("body", VARIANTS)
def test_traced_network_matches(body):
    model, _, x = randomized("[convolutional]\nfilters=16\nsize=3\npad=1\nactivation=leaky\n" + body, c=4, h=6, w=6)
    with torch.no_grad():
        traced = torch.jit.trace(model, x, check_trace=False)
    other = torch.randn_like(x)
    with torch.no_grad():
        torch.testing.assert_close(traced(other), model(other))


# ---------------------------------------------------------------- bflops


@pytest.mark.parametrize(
    "body",
    [
        "[nonlocal]\n",
        "[nonlocal]\nmode=gaussian\nsub_sample=0\n",
        "[nonlocal]\nmode=dot\n",
        "[nonlocal]\nmode=concat\n",
        "[nonlocal]\nmode=concat\nsub_sample=0\n",
        "[cc]\nrecurrence=3\n",
        "[fan]\nheads=2\nmlp_ratio=3\n",
    ],
)
def test_bflops_count_the_attention_products(body):
    model = build(body, c=16, h=6, w=5)
    layer = model.spec.layers[0]
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(1, 16, 6, 5))
    assert layer.section.bflops(list(layer.input_shapes), layer.shape) * 1e9 == pytest.approx(counter.get_total_flops())


# ---------------------------------------------------------------- errors


BAD = [
    ("[se]\nreduction=4\ngate=hard\n", "gate", "not one of"),
    ("[se]\nactivation=sigmoid\n", "activation", "not one of"),
    ("[se]\nreduction=0\n", "reduction", "greater than 0"),
    ("[cbam]\nreduction=4\nkernel_size=5\n", "kernel_size", "3 or 7"),
    ("[cbam]\nkernelsize=4\n", "kernelsize", "3 or 7"),
    ("[cbam]\nreduction=8\nratio=8\n", "ratio", "not both"),
    ("[cbam]\nkernelsize=3\nratio=2\nkernel_size=3\n", "kernelsize", "not both"),
    ("[bam]\nreduction=4\ndilation=0\n", "dilation", "greater than 0"),
    ("[scse]\nreduction=-2\n", "reduction", "greater than 0"),
    ("[eca]\nk_size=4\n", "k_size", "odd"),
    ("[gc]\nratio=0.5\nfusion=add,sum\n", "fusion", "not one of"),
    ("[gc]\nfusion=add,add\n", "fusion", "repeat"),
    ("[gc]\npooling=max\n", "pooling", "not one of"),
    ("[nonlocal]\nmode=softmax\n", "mode", "not one of"),
    ("[cc]\nrecurrence=0\n", "recurrence", "greater than 0"),
    ("[sk]\nfilters=8\ngroups=3\n", "groups", "must divide"),
    ("[splat]\nfilters=8\nradix=3\n", "radix", "must divide"),
    ("[splat]\nfilters=9\ngroups=2\n", "groups", "must divide"),
    ("[gam]\nrate=0\n", "rate", "greater than 0"),
    ("[ca]\nreduction=x\n", "reduction", "integer"),
    ("[simam]\nlambda=0\n", "lambda", "greater than 0"),
    ("[triplet]\nno_spatial=1\nkernel_size=4\n", "kernel_size", "odd"),
    ("[fan]\nmlp_ratio=2\nheads=3\n", "heads", "must divide"),
]


@pytest.mark.parametrize(("body", "key", "words"), BAD, ids=[f"{b.split(']')[0][1:]}-{k}" for b, k, _ in BAD])
def test_bad_value_is_reported_at_its_line(body, key, words):
    text = cfg("[convolutional]\nfilters=8\nsize=1\n" + body, c=8)
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.parse(text)
    (item,) = exc.value.items
    lines = text.splitlines()
    assert item.key == key and item.layer == 1 and words in item.message
    assert lines[item.line - 1].startswith(f"{key}=")


@pytest.mark.parametrize(
    ("body", "h", "w", "words"),
    [
        ("[nonlocal]\n", 1, 6, "max-pools by 2"),
        ("[simam]\n", 1, 1, "two pixels"),
        ("[splat]\nsize=3\n", 6, 6, "required"),
    ],
)
def test_impossible_input_is_reported_at_the_section(body, h, w, words):
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.parse(cfg(body, h=h, w=w))
    (item,) = exc.value.items
    assert item.line == 5 and words in item.message
