"""Gating attention sections (`[se]`, `[cbam]`, `[bam]`, `[scse]`, `[eca]`, `[gc]`, `[sk]`, `[splat]`,
`[gam]`, `[ca]`, `[simam]`, `[triplet]`): numbers against independent recomputations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from attentionkit import bn, build, randomized


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(x + 3, 0, 6) / 6


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
