"""`[dcn]` and `[odconv]`, whose sampling positions or kernels are predicted from the input: against
recomputations one output pixel or one sample at a time, plus their gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from blockcheck import leaky
from convkit import (
    assert_gradients_reach_every_parameter,
    build,
    cfg_keys,
    darknet_window,
    explicit_conv,
    norm,
    randomize_norms,
)

import netcfg

# ---------------------------------------------------------------- [dcn]


def bilinear(image: torch.Tensor, y: float, x: float) -> torch.Tensor:
    """Bilinear sample of a (C, H, W) image at (y, x), pixels outside the image counting as 0."""
    _, h, w = image.shape
    y0, x0 = math.floor(y), math.floor(x)
    value = image.new_zeros(image.shape[0])
    for yy in (y0, y0 + 1):
        for xx in (x0, x0 + 1):
            if 0 <= yy < h and 0 <= xx < w:
                value += (1 - abs(y - yy)) * (1 - abs(x - xx)) * image[:, yy, xx]
    return value


def deform_conv_reference(x, offsets, mask, weight, stride, padding, dilation, groups, deformable_groups):
    """DCN by its definition, one output pixel and one kernel tap at a time; offsets hold (dy, dx)
    per tap, tap-major within each deformable group; mask one value per tap and group."""
    b, c, _, _ = x.shape
    f, cg, k, _ = weight.shape
    taps = k * k
    out_h, out_w = offsets.shape[-2:]
    cd = c // deformable_groups
    out = x.new_zeros(b, f, out_h, out_w)
    for n in range(b):
        for oy in range(out_h):
            for ox in range(out_w):
                columns = x.new_zeros(c, taps)
                for g in range(deformable_groups):
                    for t in range(taps):
                        i, j = divmod(t, k)
                        dy = float(offsets[n, 2 * (g * taps + t), oy, ox])
                        dx = float(offsets[n, 2 * (g * taps + t) + 1, oy, ox])
                        y = oy * stride[0] - padding + i * dilation + dy
                        xx = ox * stride[1] - padding + j * dilation + dx
                        value = bilinear(x[n, g * cd : (g + 1) * cd], y, xx)
                        if mask is not None:
                            value = value * mask[n, g * taps + t, oy, ox]
                        columns[g * cd : (g + 1) * cd, t] = value
                for o in range(f):
                    grp = o // (f // groups)
                    out[n, o, oy, ox] = (weight[o].reshape(cg, taps) * columns[grp * cg : (grp + 1) * cg]).sum()
    return out


DCN_CASES = [
    "filters=4\nsize=3\npad=1",
    "filters=4\nsize=3\nstride=2\npad=1\ngroups=2\ndeformable_groups=2",
    "filters=6\nsize=3\nstride_x=2\npad=1\ndilation=2\ndeformable_groups=4",
    "filters=2\nsize=2\npadding=1\ngroups=2",
]


@pytest.mark.parametrize("keys", DCN_CASES)
@pytest.mark.parametrize("version", [1, 2])
def test_dcn_matches_explicit_deformable_convolution(keys, version):
    model = build(f"[dcn]\n{keys}\nversion={version}\nactivation=linear\n", height=7, width=6).double()
    dcn = model.layers[0]
    with torch.no_grad():
        dcn.offset.weight.normal_(0, 0.3)
        dcn.offset.bias.normal_(0, 1.0)
        dcn.tail.bias.normal_()
    x = torch.randn(2, 4, 7, 6, dtype=torch.float64)
    out = model(x)
    assert tuple(out.shape[1:]) == model.spec.layers[0].shape
    with torch.no_grad():
        predicted = dcn.offset(x)
    cfg = {k: int(v) for k, v in cfg_keys(keys).items()}
    taps = cfg.get("deformable_groups", 1) * cfg["size"] ** 2
    assert predicted[:, : 2 * taps].abs().max() > 0.5, "offsets should move samples off the grid"
    mask = torch.sigmoid(predicted[:, 2 * taps :]) if version == 2 else None
    strides, padding, dilation, groups = darknet_window(keys)
    window = (strides, padding, dilation, groups, cfg.get("deformable_groups", 1))
    expected = deform_conv_reference(x, predicted[:, : 2 * taps], mask, dcn.weight, *window)
    expected = expected + dcn.tail.bias.reshape(1, -1, 1, 1)
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9)


def dcn_like(conv: netcfg.Network, keys: str, version: int) -> netcfg.Network:
    """A `[dcn]` with `conv`'s keys and weights (its offset conv left at zero)."""
    dcn = build(f"[dcn]\n{keys}\nversion={version}\n", height=9, width=7)
    renamed = {"conv.weight": "weight", "conv.bias": "tail.bias"}
    state = {renamed.get(k, k.replace("bn.", "tail.bn.")): v for k, v in conv.layers[0].state_dict().items()}
    assert dcn.layers[0].load_state_dict(state, strict=False).missing_keys == ["offset.weight", "offset.bias"]
    return dcn


@pytest.mark.parametrize(
    "keys",
    [
        "filters=6\nsize=3\npad=1\nbatch_normalize=1\nactivation=leaky",
        "filters=4\nsize=3\nstride=2\npad=1\ngroups=2\ndilation=2\nactivation=linear",
        "filters=4\nsize=1\nactivation=logistic",
    ],
)
def test_dcn_with_zero_offsets_and_unit_modulation_equals_convolutional(keys):
    x = torch.randn(2, 4, 9, 7)
    conv = build(f"[convolutional]\n{keys}\n", height=9, width=7)
    randomize_norms(conv)
    torch.testing.assert_close(dcn_like(conv, keys, 1)(x), conv(x), rtol=1e-5, atol=1e-5)
    dcn_v2 = dcn_like(conv, keys, 2)
    taps = dcn_v2.layers[0].size ** 2
    with torch.no_grad():
        dcn_v2.layers[0].offset.bias[2 * taps :] = 40.0  # sigmoid(40) == 1 in float32
    torch.testing.assert_close(dcn_v2(x), conv(x), rtol=1e-5, atol=1e-5)


def test_fresh_dcn_v2_halves_the_convolution():
    keys = "filters=3\nsize=3\npad=1\nactivation=linear"
    conv = build(f"[convolutional]\n{keys}\n", height=9, width=7)
    dcn = dcn_like(conv, keys, 2)
    x = torch.randn(1, 4, 9, 7)
    bias = conv.layers[0].conv.bias.reshape(1, -1, 1, 1)
    torch.testing.assert_close(dcn(x) - bias, 0.5 * (conv(x) - bias), rtol=1e-5, atol=1e-6)


def test_dcn_gradients_reach_every_parameter():
    model = build("[dcn]\nfilters=4\nsize=3\npad=1\nbatch_normalize=1\ndeformable_groups=2\n")
    assert_gradients_reach_every_parameter(model, torch.randn(2, 4, 8, 8))


# ---------------------------------------------------------------- [odconv]


def odconv_reference(x: torch.Tensor, s: dict, keys: str) -> torch.Tensor:
    """ODConv one sample at a time: y = α_f ⊙ ((Σᵢ α_wᵢ · α_s ⊙ Wᵢ) * (α_c ⊙ x))."""
    outs = []
    for sample in x:
        pooled = sample.mean(dim=(1, 2))
        z = F.relu(s["attention.squeeze.weight"] @ pooled + s["attention.squeeze.bias"])

        heads = {
            name: s[f"attention.{name}.weight"] @ z + s[f"attention.{name}.bias"]
            for name in ("channel", "filter", "spatial", "kernel")
        }
        channel, filt, spatial = (torch.sigmoid(heads[name]) for name in ("channel", "filter", "spatial"))
        logits = heads["kernel"]
        kernel_att = torch.exp(logits) / torch.exp(logits).sum()
        kernels = s["weight"]
        k = kernels.shape[-1]
        mixed = sum(kernel_att[i] * kernels[i] for i in range(kernels.shape[0])) * spatial.reshape(k, k)
        strides, p, dilation, groups = darknet_window(keys)
        scaled = F.pad((sample * channel[:, None, None])[None], (p, p, p, p))
        y = explicit_conv(scaled, mixed, strides, dilation, groups)
        outs.append(y[0] * filt[:, None, None])
    return torch.stack(outs)


@pytest.mark.parametrize(
    "keys",
    [
        "filters=6\nsize=3\npad=1\nstride=2\ngroups=2",
        "filters=4\nsize=3\npad=1\ndilation=2\nkernel_num=3\nreduction=0.5",
    ],
)
def test_odconv_matches_per_sample_recomputation(keys):
    model = build(f"[odconv]\n{keys}\nbatch_normalize=1\nactivation=leaky\n", height=9)
    randomize_norms(model)
    x = torch.randn(3, 4, 9, 8)
    out = model(x)
    assert tuple(out.shape[1:]) == model.spec.layers[0].shape
    s = model.layers[0].state_dict()
    expected = leaky(norm(odconv_reference(x, s, keys), s, "tail.bn"))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_odconv_attention_width_and_gradients():
    model = build("[odconv]\nfilters=8\nsize=3\npad=1\nkernel_num=4\n")
    assert model.layers[0].attention.squeeze.out_features == 16  # max(in · 1/16, 16)
    assert model.layers[0].weight.shape == (4, 8, 4, 3, 3)
    assert_gradients_reach_every_parameter(model, torch.randn(2, 4, 8, 8))
