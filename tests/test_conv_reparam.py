"""The re-parameterisable convolutions `[acb]` and `[refconv]`: against their branches and refocused
kernel written out, plus their gradients and refconv's frozen base kernel."""

from __future__ import annotations

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

# ---------------------------------------------------------------- [acb]

ACB_CASES = [
    "filters=4\nsize=3\npad=1\nbatch_normalize=1\nactivation=leaky",
    "filters=4\nsize=3\nstride=2\npad=1\ngroups=2\ndilation=2\nbatch_normalize=1\nactivation=leaky",
    "filters=2\nsize=5\nstride_y=2\npadding=1\nactivation=leaky",
]


@pytest.mark.parametrize("keys", ACB_CASES)
def test_acb_is_the_sum_of_square_horizontal_and_vertical_branches(keys):
    model = build(f"[acb]\n{keys}\n", height=9)
    randomize_norms(model)
    acb = model.layers[0]
    x = torch.randn(2, 4, 9, 8)
    out = model(x)
    assert tuple(out.shape[1:]) == model.spec.layers[0].shape
    s = acb.state_dict()
    strides, p, d, g = darknet_window(keys)
    k = int(cfg_keys(keys)["size"])
    xp = F.pad(x, (p, p, p, p))
    full = s["square.conv.weight"]
    # The 1×k and k×1 kernels sample the centre row and column of the k×k window.
    horizontal = torch.zeros_like(full)
    horizontal[:, :, k // 2 : k // 2 + 1] = s["horizontal.conv.weight"]
    vertical = torch.zeros_like(full)
    vertical[:, :, :, k // 2 : k // 2 + 1] = s["vertical.conv.weight"]
    branches = []
    for name, kernel in (("square", full), ("horizontal", horizontal), ("vertical", vertical)):
        y = explicit_conv(xp, kernel, strides, d, g)
        y = norm(y, s, f"{name}.bn") if f"{name}.bn.weight" in s else y + s[f"{name}.conv.bias"].reshape(1, -1, 1, 1)
        branches.append(y)
    torch.testing.assert_close(out, leaky(sum(branches)), rtol=1e-5, atol=1e-5)


def test_acb_gradients():
    model = build("[acb]\nfilters=4\nsize=3\npad=1\nbatch_normalize=1\n")
    assert_gradients_reach_every_parameter(model, torch.randn(2, 4, 8, 8))


# ---------------------------------------------------------------- [refconv]


def refocused_reference(base: torch.Tensor, transform: torch.Tensor, groups: int) -> torch.Tensor:
    """W_b + T(W_b) with T written out: each 2-D kernel q is refocused on the `groups` kernels of its
    transformation group (zero-padded m×m windows over them)."""
    f, cg, k, _ = base.shape
    kernels = base.reshape(f * cg, k, k)
    m = transform.shape[-1]
    padded = F.pad(kernels, [m // 2] * 4)
    out = kernels.clone()
    for q in range(f * cg):
        first = (q // groups) * groups
        for j in range(groups):
            for y in range(k):
                for x in range(k):
                    out[q, y, x] += (transform[q, j] * padded[first + j, y : y + m, x : x + m]).sum()
    return out.reshape(f, cg, k, k)


@pytest.mark.parametrize(
    "keys, channels",
    [
        ("filters=4\nsize=3\npad=1\nstride=2\nbatch_normalize=1\nactivation=leaky", 4),
        ("filters=6\nsize=3\npad=1\ngroups=6\ndilation=2\nactivation=leaky", 6),
        ("filters=4\nsize=5\npad=1\ngroups=2\nbatch_normalize=1\nactivation=leaky", 4),
    ],
)
def test_refconv_convolves_with_the_refocused_kernel(keys, channels):
    model = build(f"[refconv]\n{keys}\n", channels=channels, height=9)
    randomize_norms(model)
    ref = model.layers[0]
    with torch.no_grad():
        ref.refocus.weight.normal_(0, 0.3)
        if ref.tail.bias is not None:
            ref.tail.bias.normal_()
    x = torch.randn(2, channels, 9, 8)
    out = model(x)
    assert tuple(out.shape[1:]) == model.spec.layers[0].shape
    s = ref.state_dict()
    strides, p, dilation, groups = darknet_window(keys)
    kernel = refocused_reference(s["base"], s["refocus.weight"], groups)
    y = explicit_conv(F.pad(x, (p, p, p, p)), kernel, strides, dilation, groups)
    y = norm(y, s, "tail.bn") if "tail.bn.weight" in s else y + s["tail.bias"].reshape(1, -1, 1, 1)
    torch.testing.assert_close(out, leaky(y), rtol=1e-5, atol=1e-5)


def test_fresh_refconv_uses_its_base_kernel():
    model = build("[refconv]\nfilters=4\nsize=3\npad=1\nactivation=linear\n")
    ref = model.layers[0]
    x = torch.randn(1, 4, 8, 8)
    torch.testing.assert_close(model(x), F.conv2d(x, ref.base, ref.tail.bias, padding=1))


def test_refconv_base_kernel_is_frozen_and_the_rest_learns():
    model = build("[refconv]\nfilters=4\nsize=3\npad=1\nbatch_normalize=1\n")
    ref = model.layers[0]
    assert all(p is not ref.base for p in model.parameters())
    assert "base" in ref.state_dict()
    assert_gradients_reach_every_parameter(model, torch.randn(2, 4, 8, 8))
    assert ref.base.grad is None and not ref.base.requires_grad
