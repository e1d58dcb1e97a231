"""Reference implementations for the darknet layer tests: literal transcriptions of darknet's C
forward functions on flat Python lists (the C arrays), independent of netcfg's modules."""

from __future__ import annotations

import math

import torch

import netcfg

FLT_MAX = 3.4028234663852886e38
#: Three convolutions and a `[shortcut]` adding the first two to the third (keys for it may follow).
SHORTCUT_BODY = (
    "[convolutional]\nfilters=6\nsize=1\nactivation=linear\n"
    "[convolutional]\nfilters=2\nsize=1\nactivation=linear\n"
    "[convolutional]\nfilters=4\nsize=1\nactivation=linear\n"
    "[shortcut]\nfrom=-2,-3\nactivation=linear\n"
)


def build(body: str, c: int = 4, h: int = 8, w: int = 8) -> netcfg.Network:
    """A network from a cfg body under a small `[net]` header, in eval mode."""
    return netcfg.build(f"[net]\nwidth={w}\nheight={h}\nchannels={c}\n{body}")


def output(model: netcfg.Network, x: torch.Tensor, layer: int = -1) -> torch.Tensor:
    with torch.no_grad():
        return model(x, return_layers=[layer])[layer]


def randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))


def flat(t: torch.Tensor) -> list[float]:
    return t.detach().double().flatten().tolist()


def assert_close(actual: torch.Tensor, expected: list[float], rtol: float = 1e-5, atol: float = 1e-5) -> None:
    got = actual.detach().double().flatten()
    want = torch.tensor(expected, dtype=torch.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    torch.testing.assert_close(got, want, rtol=rtol, atol=atol)


def logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def softmax(values: list[float], temp: float = 1.0) -> list[float]:
    """darknet's softmax(): subtract the largest, exponentiate x/temp, normalise."""
    largest = max(values)
    e = [math.exp(v / temp - largest / temp) for v in values]
    s = sum(e)
    return [v / s for v in e]


def batchnorm(x, spatial, scales, biases, mean, variance):
    """normalize_cpu (eps .00001) with the rolling statistics, scale_bias, add_bias; one image."""
    out = []
    for i, v in enumerate(x):
        f = i // spatial
        out.append((v - mean[f]) / math.sqrt(variance[f] + 0.00001) * scales[f] + biases[f])
    return out


def conv(x, c, h, w, weights, biases, n, size, sy, sx, pad, dilation=1, groups=1):
    """Darknet's forward_convolutional_layer (im2col_cpu_ext + gemm + add_bias), one image."""
    out_h = (h + 2 * pad - size) // sy + 1
    out_w = (w + 2 * pad - size) // sx + 1
    cg, ng = c // groups, n // groups
    p = pad * dilation
    out = []
    for f in range(n):
        g = f // ng
        for i in range(out_h):
            for j in range(out_w):
                total = 0.0
                for k in range(cg):
                    for ky in range(size):
                        for kx in range(size):
                            r = i * sy + ky * dilation - p
                            q = j * sx + kx * dilation - p
                            if 0 <= r < h and 0 <= q < w:
                                wi = ((f * cg + k) * size + ky) * size + kx
                                total += weights[wi] * x[((g * cg + k) * h + r) * w + q]
                out.append(total + biases[f])
    return out, out_h, out_w


def blur(x, c, h, w, sy, sx, mode):
    """Darknet's anti-aliasing layer: a depthwise conv with fixed weights, zero bias, linear."""
    if mode == 1:
        k = [1 / 16, 2 / 16, 1 / 16, 2 / 16, 4 / 16, 2 / 16, 1 / 16, 2 / 16, 1 / 16]
        size, pad = 3, 1
    else:
        k = [1 / 4] * 4
        size, pad = 2, 0
    weights = k * c
    return conv(x, c, h, w, weights, [0.0] * c, c, size, sy, sx, pad, 1, c)


def maxpool(x, c, h, w, size, sy, sx, pad):
    """Darknet's forward_maxpool_layer (generic path): −FLT_MAX outside the image."""
    out_h = (h + pad - size) // sy + 1
    out_w = (w + pad - size) // sx + 1
    off = -(pad // 2)
    out = []
    for k in range(c):
        for i in range(out_h):
            for j in range(out_w):
                best = -FLT_MAX
                for n in range(size):
                    for m in range(size):
                        r, q = off + i * sy + n, off + j * sx + m
                        valid = 0 <= r < h and 0 <= q < w
                        val = x[q + w * (r + h * k)] if valid else -FLT_MAX
                        best = val if val > best else best
                out.append(best)
    return out, out_h, out_w
