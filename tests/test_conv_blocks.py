"""Blocks built from plain convolutions — `[coordconv]`, `[ghost]`, `[blurpool]`, `[blaze]`, `[dwconv]`,
`[mixconv]`: each against an independent computation written here, plus its gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from blockcheck import leaky
from convkit import assert_gradients_reach_every_parameter, build, explicit_conv, norm, randomize_norms

# ---------------------------------------------------------------- [coordconv]


def coordinate_channels(h: int, w: int, with_r: bool) -> torch.Tensor:
    xs = torch.tensor([[-1 + 2 * j / (w - 1) for j in range(w)] for _ in range(h)])
    ys = torch.tensor([[-1 + 2 * i / (h - 1) for _ in range(w)] for i in range(h)])
    channels = [xs, ys] + ([torch.sqrt(xs**2 + ys**2)] if with_r else [])
    return torch.stack(channels)


@pytest.mark.parametrize("with_r", [0, 1])
def test_coordconv_is_a_convolution_over_input_and_coordinates(with_r):
    model = build(f"[coordconv]\nfilters=5\nsize=3\nstride=2\npad=1\nactivation=linear\nwith_r={with_r}\n", width=10)
    x = torch.randn(2, 4, 8, 10)
    out = model(x)
    assert tuple(out.shape[1:]) == model.spec.layers[0].shape == (5, 4, 5)
    state = model.layers[0].state_dict()
    assert state["conv.conv.weight"].shape[1] == 4 + 2 + with_r
    extended = torch.cat([x, coordinate_channels(8, 10, bool(with_r)).expand(2, -1, -1, -1)], dim=1)
    expected = F.conv2d(extended, state["conv.conv.weight"], state["conv.conv.bias"], stride=2, padding=1)
    torch.testing.assert_close(out, expected)


def test_coordconv_gradients_and_groups_counting_coordinates():
    model = build("[coordconv]\nfilters=6\nsize=3\npad=1\nbatch_normalize=1\ngroups=3\nwith_r=0\n", channels=7)
    assert model.layers[0].conv.conv.groups == 3
    assert_gradients_reach_every_parameter(model, torch.randn(2, 7, 8, 8))


# ---------------------------------------------------------------- [ghost]


@pytest.mark.parametrize("relu", [0, 1])
def test_ghost_is_primary_and_cheap_maps_trimmed(relu):
    model = build(f"[ghost]\nfilters=5\nsize=3\nratio=3\ndw_size=3\nstride=2\nrelu={relu}\n", height=9)
    randomize_norms(model)
    x = torch.randn(2, 4, 9, 8)
    out = model(x)
    assert tuple(out.shape[1:]) == model.spec.layers[0].shape == (5, 5, 4)
    s = model.layers[0].state_dict()
    act = F.relu if relu else (lambda y: y)
    primary = act(norm(F.conv2d(x, s["primary.conv.weight"], stride=2, padding=1), s, "primary.bn"))
    assert primary.shape[1] == 2  # ⌈5 / 3⌉
    cheap = act(norm(F.conv2d(primary, s["cheap.conv.weight"], padding=1, groups=2), s, "cheap.bn"))
    assert cheap.shape[1] == 4
    torch.testing.assert_close(out, torch.cat([primary, cheap], dim=1)[:, :5])


def test_ghost_gradients():
    assert_gradients_reach_every_parameter(build("[ghost]\nfilters=6\n"), torch.randn(2, 4, 8, 8))


# ---------------------------------------------------------------- [blurpool]


def pascal_row(n: int) -> list[int]:
    row = [1]
    for _ in range(n - 1):
        row = [a + b for a, b in zip([0, *row], [*row, 0])]
    return row


def padded_pixel(image: torch.Tensor, i: int, j: int, pad_type: str) -> torch.Tensor:
    """image[:, i, j] with out-of-range indices reflected, replicated or zero."""
    _, h, w = image.shape
    if pad_type == "zero" and not (0 <= i < h and 0 <= j < w):
        return image.new_zeros(image.shape[0])
    if pad_type == "reflect":
        i = -i if i < 0 else (2 * (h - 1) - i if i >= h else i)
        j = -j if j < 0 else (2 * (w - 1) - j if j >= w else j)
    return image[:, min(max(i, 0), h - 1), min(max(j, 0), w - 1)]


@pytest.mark.parametrize("pad_type", ["reflect", "replicate", "zero"])
@pytest.mark.parametrize("size", range(1, 8))
def test_blurpool_is_a_normalised_binomial_blur_then_subsampling(size, pad_type):
    stride = 2 if size % 2 else 3
    model = build(
        f"[blurpool]\nfilt_size={size}\nstride={stride}\npad_type={pad_type}\n", channels=2, height=9, width=8
    )
    x = torch.randn(1, 2, 9, 8)
    out = model(x)
    assert tuple(out.shape[1:]) == model.spec.layers[0].shape
    row = torch.tensor(pascal_row(size), dtype=torch.float32)
    kernel = row[:, None] * row[None, :] / row.sum() ** 2
    before = (size - 1) // 2
    expected = torch.zeros_like(out)
    for oi in range(out.shape[2]):
        for oj in range(out.shape[3]):
            for u in range(size):
                for v in range(size):
                    pixel = padded_pixel(x[0], oi * stride - before + u, oj * stride - before + v, pad_type)
                    expected[0, :, oi, oj] += kernel[u, v] * pixel
    torch.testing.assert_close(out, expected)


def test_blurpool_has_no_parameters_and_keeps_gradients_to_its_input():
    model = build("[convolutional]\nfilters=3\nsize=1\n[blurpool]\n")
    assert sum(p.numel() for p in model.layers[1].parameters()) == 0
    assert_gradients_reach_every_parameter(model, torch.randn(2, 4, 8, 8))


# ---------------------------------------------------------------- [blaze]


def explicit_ceil_maxpool(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    out = x.new_empty(*x.shape[:2], (h + 1) // 2, (w + 1) // 2)
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = x[:, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].amax(dim=(2, 3))
    return out


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("double", [False, True])
def test_blaze_block_is_branch_plus_padded_shortcut(stride, double):
    keys = "filters=5\nfilters2=7" if double else "filters=6"
    model = build(f"[blaze]\n{keys}\nsize=3\nstride={stride}\n", height=7, width=8)
    randomize_norms(model)
    x = torch.randn(2, 4, 7, 8)
    out = model(x)
    assert tuple(out.shape[1:]) == model.spec.layers[0].shape
    s = model.layers[0].state_dict()
    y = norm(F.conv2d(x, s["branch.0.conv.weight"], stride=stride, padding=1, groups=4), s, "branch.0.bn")
    y = norm(F.conv2d(y, s["branch.1.conv.weight"]), s, "branch.1.bn")
    if double:
        y = F.relu(y)
        y = norm(F.conv2d(y, s["branch.2.conv.weight"], padding=1, groups=5), s, "branch.2.bn")
        y = norm(F.conv2d(y, s["branch.3.conv.weight"]), s, "branch.3.bn")
    shortcut = explicit_ceil_maxpool(x) if stride == 2 else x
    shortcut = torch.cat([shortcut, shortcut.new_zeros(2, y.shape[1] - 4, *shortcut.shape[2:])], dim=1)
    torch.testing.assert_close(out, F.relu(y + shortcut))


def test_blaze_gradients():
    model = build("[blaze]\nfilters=4\nfilters2=8\nstride=2\n")
    assert_gradients_reach_every_parameter(model, torch.randn(2, 4, 8, 8))


# ---------------------------------------------------------------- [dwconv]


@pytest.mark.parametrize("batch_normalize", [0, 1])
def test_dwconv_is_depthwise_then_pointwise(batch_normalize):
    model = build(
        f"[dwconv]\nfilters=6\nsize=3\nstride=2\ndilation=2\nbatch_normalize={batch_normalize}\nactivation=leaky\n",
        height=9,
    )
    randomize_norms(model)
    x = torch.randn(2, 4, 9, 8)
    out = model(x)
    assert tuple(out.shape[1:]) == model.spec.layers[0].shape == (6, 5, 4)
    s = model.layers[0].state_dict()

    def tail(y: torch.Tensor, prefix: str) -> torch.Tensor:
        y = norm(y, s, f"{prefix}.bn") if batch_normalize else y + s[f"{prefix}.conv.bias"].reshape(1, -1, 1, 1)
        return leaky(y)

    y = tail(explicit_conv(F.pad(x, (2, 2, 2, 2)), s["depthwise.conv.weight"], (2, 2), 2, groups=4), "depthwise")
    torch.testing.assert_close(out, tail(explicit_conv(y, s["pointwise.conv.weight"]), "pointwise"))


def test_dwconv_gradients():
    assert_gradients_reach_every_parameter(build("[dwconv]\nfilters=8\n"), torch.randn(2, 4, 8, 8))


# ---------------------------------------------------------------- [mixconv]


def expected_split(total: int, sizes: list[int], method: str) -> list[int]:
    """MixConv's partitions. equal_ch: ⌊total/n⌋ each, the rest to the first group. equal_params:
    cᵢ·kᵢ² equal, i.e. cᵢ = total·k⁻²ᵢ / Σk⁻², rounded by largest remainder (Hamilton)."""
    n = len(sizes)
    if method == "equal_ch":
        return [total // n + total % n] + [total // n] * (n - 1)
    quotas = [total * (1 / k**2) / sum(1 / q**2 for q in sizes) for k in sizes]
    counts = [int(q) for q in quotas]
    for i in sorted(range(n), key=lambda i: -(quotas[i] - counts[i]))[: total - sum(counts)]:
        counts[i] += 1
    return counts


def test_mixconv_splits_follow_the_paper_rules():
    assert expected_split(16, [3, 5, 7], "equal_params") == [10, 4, 2]  # 90, 100, 98 weights per input channel
    assert expected_split(16, [3, 5, 7], "equal_ch") == [6, 5, 5]
    for total, sizes in [(16, [3, 5, 7]), (32, [3, 5]), (24, [3, 5, 7, 9]), (10, [1, 3])]:
        for method in ("equal_params", "equal_ch"):
            model = build(f"[mixconv]\nfilters={total}\nsizes={','.join(map(str, sizes))}\nmethod={method}\n")
            splits = [conv.out_channels for conv in model.layers[0].convs]
            assert splits == expected_split(total, sizes, method)
            assert [conv.kernel_size[0] for conv in model.layers[0].convs] == sizes


@pytest.mark.parametrize("method", ["equal_params", "equal_ch"])
@pytest.mark.parametrize("depthwise", [0, 1])
def test_mixconv_concatenates_one_convolution_per_kernel_size(method, depthwise):
    channels, filters = (10, 20) if depthwise else (4, 11)
    model = build(
        f"[mixconv]\nfilters={filters}\nsizes=3,5,7\nstride=2\nmethod={method}\ndepthwise={depthwise}\n",
        channels=channels,
        height=7,
    )
    x = torch.randn(2, channels, 7, 8)
    out = model(x)
    assert tuple(out.shape[1:]) == model.spec.layers[0].shape == (filters, 4, 4)
    s = model.layers[0].state_dict()
    split = expected_split(channels if depthwise else filters, [3, 5, 7], method)
    parts, start = [], 0
    for i, (n, k) in enumerate(zip(split, [3, 5, 7])):
        weight, bias = s[f"convs.{i}.weight"], s[f"convs.{i}.bias"]
        source = x[:, start : start + n] if depthwise else x
        groups = n if depthwise else 1
        parts.append(explicit_conv(F.pad(source, [k // 2] * 4), weight, (2, 2), groups=groups))
        parts[-1] += bias.reshape(1, -1, 1, 1)
        start += n
    torch.testing.assert_close(out, torch.cat(parts, dim=1))


def test_mixconv_gradients():
    model = build("[mixconv]\nfilters=8\nsizes=3,5\ndepthwise=1\n")
    assert_gradients_reach_every_parameter(model, torch.randn(2, 4, 8, 8))
