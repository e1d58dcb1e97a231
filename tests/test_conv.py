"""The `conv` family: each section against an independent computation written here."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import netcfg

torch.manual_seed(0)


def build(body: str, channels: int = 4, height: int = 8, width: int = 8) -> netcfg.Network:
    return netcfg.build(f"[net]\nwidth={width}\nheight={height}\nchannels={channels}\n{body}")


def randomize_norms(model: nn.Module) -> None:
    """Non-trivial batch-norm statistics and affine parameters, so folding them is really tested."""
    gen = torch.Generator().manual_seed(1)
    for bn in model.modules():
        if isinstance(bn, nn.BatchNorm2d):
            n = bn.num_features
            bn.running_mean.copy_(torch.randn(n, generator=gen) * 0.5)
            bn.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            with torch.no_grad():
                bn.weight.copy_(torch.randn(n, generator=gen))
                bn.bias.copy_(torch.randn(n, generator=gen))


def norm(y: torch.Tensor, state: dict, prefix: str, eps: float = 1e-5) -> torch.Tensor:
    """Eval-mode batch norm written out from a state dict."""

    def per_channel(name: str) -> torch.Tensor:
        return state[f"{prefix}.{name}"].reshape(1, -1, 1, 1)

    return (y - per_channel("running_mean")) / torch.sqrt(per_channel("running_var") + eps) * per_channel(
        "weight"
    ) + per_channel("bias")


def leaky(y: torch.Tensor) -> torch.Tensor:
    return torch.where(y > 0, y, 0.1 * y)


def explicit_conv(
    x: torch.Tensor, weight: torch.Tensor, stride: tuple[int, int] = (1, 1), dilation: int = 1, groups: int = 1
) -> torch.Tensor:
    """Unpadded convolution as a loop over output positions (each a sum over one input window)."""
    b, c, h, w = x.shape
    f, cg, kh, kw = weight.shape
    out_h = (h - dilation * (kh - 1) - 1) // stride[0] + 1
    out_w = (w - dilation * (kw - 1) - 1) // stride[1] + 1
    out = x.new_zeros(b, f, out_h, out_w)
    per_group = f // groups
    for i in range(out_h):
        for j in range(out_w):
            y0, x0 = i * stride[0], j * stride[1]
            window = x[:, :, y0 : y0 + dilation * (kh - 1) + 1 : dilation, x0 : x0 + dilation * (kw - 1) + 1 : dilation]
            for g in range(groups):
                part = window[:, g * cg : (g + 1) * cg]
                kernels = weight[g * per_group : (g + 1) * per_group]
                out[:, g * per_group : (g + 1) * per_group, i, j] = torch.einsum("bckl,fckl->bf", part, kernels)
    return out


def cfg_keys(keys: str) -> dict[str, str]:
    """The `key=value` lines of a section body."""
    return dict(line.split("=", 1) for line in keys.split("\n") if line)


def darknet_window(keys: str) -> tuple[tuple[int, int], int, int, int]:
    """(strides (y, x), padding in pixels, dilation, groups) of a convolution with these keys, by
    darknet's parse_convolutional: stride_x/stride_y fall back to stride, pad=1 means size/2,
    size 1 means dilation 1, and the convolution pads pad·dilation pixels (im2col_cpu_ext)."""
    v = {k: int(x) for k, x in cfg_keys(keys).items() if x.lstrip("-").isdigit()}
    stride = v.get("stride", 1)
    strides = (v.get("stride_y", stride), v.get("stride_x", stride))
    size = v.get("size", 1)
    dilation = 1 if size == 1 else v.get("dilation", 1)
    pad = size // 2 if v.get("pad") else v.get("padding", 0)
    return strides, pad * dilation, dilation, v.get("groups", 1)


def assert_gradients_reach_every_parameter(model: nn.Module, x: torch.Tensor) -> None:
    model.train()
    out = model(x)
    (out * torch.randn_like(out)).sum().backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


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


# ---------------------------------------------------------------- cfg errors

CFG_ERRORS = [
    ("[dcn]\nfilters=4\nversion=3\n", 7, "version"),
    ("[dcn]\nfilters=4\ndeformable_groups=3\n", 7, "deformable_groups"),
    ("[coordconv]\nfilters=4\ngroups=4\n", 7, "groups"),
    ("[ghost]\nfilters=4\nratio=1\n", 7, "ratio"),
    ("[ghost]\nfilters=4\ndw_size=4\n", 7, "dw_size"),
    ("[blurpool]\nfilt_size=8\n", 6, "filt_size"),
    ("[blurpool]\npad_type=mirror\n", 6, "pad_type"),
    ("[acb]\nfilters=4\nsize=4\n", 7, "size"),
    ("[blaze]\nfilters=2\n", 6, "filters"),
    ("[blaze]\nfilters=4\nstride=3\n", 7, "stride"),
    ("[dwconv]\nfilters=4\nactivation=reul\n", 7, "activation"),
    ("[mixconv]\nfilters=4\nsizes=3,4\n", 7, "sizes"),
    ("[mixconv]\nfilters=4\nmethod=equal\n", 7, "method"),
    ("[mixconv]\nfilters=4\nsizes=1,3,5\n", 7, "sizes"),
    ("[mixconv]\nfilters=6\ndepthwise=1\n", 5, None),
    ("[odconv]\nfilters=4\nreduction=0\n", 7, "reduction"),
    ("[refconv]\nfilters=4\nantialiasing=1\n", 7, "antialiasing"),
]


@pytest.mark.parametrize("body, line, key", CFG_ERRORS, ids=[" ".join(c[0].split("\n")[::2]) for c in CFG_ERRORS])
def test_bad_values_are_cfg_errors_at_their_line(body, line, key):
    with pytest.raises(netcfg.CfgError) as exc:
        build(body)
    (item,) = exc.value.items
    assert item.line == line and item.key == key, item


CONVOLUTIONAL_ONLY_KEYS = ["cbn=1", "binary=1", "xnor=1", "antialiasing=1", "share_index=0", "bin_output=1"]


@pytest.mark.parametrize("variant", ["dcn", "acb", "refconv", "odconv", "coordconv"])
@pytest.mark.parametrize("key", CONVOLUTIONAL_ONLY_KEYS)
def test_conv_variants_refuse_the_keys_only_convolutional_honours(variant, key):
    with pytest.raises(netcfg.CfgError) as exc:
        build(f"[{variant}]\nfilters=4\nsize=3\n{key}\ngroups=4\n")
    (item,) = exc.value.items
    assert (item.line, item.key) == (8, key.split("=")[0]) and "unknown key" in item.message, item


def test_cbn_on_convolutional_is_batch_norm():
    model = build("[convolutional]\nfilters=4\nsize=3\npad=1\ncbn=1\nactivation=linear\n")
    randomize_norms(model)
    model.eval()
    x = torch.randn(2, 4, 8, 8)
    state = model.layers[0].state_dict()
    assert "conv.bias" not in state
    expected = norm(F.conv2d(x, state["conv.weight"], padding=1), state, "bn")
    torch.testing.assert_close(model(x), expected)


# ---------------------------------------------------------------- BFLOPs of blocks the generic count misses


def test_bflops_of_functional_convolutions():
    spec = netcfg.parse(
        "[net]\nwidth=8\nheight=8\nchannels=4\n"
        "[refconv]\nfilters=6\nsize=3\npad=1\ngroups=2\n"
        "[dcn]\nfilters=4\nsize=3\npad=1\nstride=2\ndeformable_groups=2\n"
        "[blurpool]\nfilt_size=5\n"
    )
    refconv, dcn, blurpool = (layer.section.bflops(list(layer.input_shapes), layer.shape) for layer in spec.layers)
    assert refconv == pytest.approx(2 * 6 * 2 * 9 * 64 / 1e9)
    assert dcn == pytest.approx(2 * (4 * 6 * 9 + 2 * 9 * 3 * 6 * 9) * 16 / 1e9)  # weights + offset/mask conv
    assert blurpool == pytest.approx(2 * 4 * 25 * 4 / 1e9)
