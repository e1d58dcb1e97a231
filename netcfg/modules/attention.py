"""Attention blocks: channel, spatial and self-attention plug-ins for (B, C, H, W) feature maps.

Hidden widths are computed by the section models (`netcfg.sections.attention`) and passed in, so the
modules stay plain: each takes the widths it builds with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .activations import activation
from .common import ConvBNAct


def _spatial_mean(x: torch.Tensor) -> torch.Tensor:
    """Global average pool to (B, C, 1, 1)."""
    return x.mean((2, 3), keepdim=True)


class SqueezeExcite(nn.Module):
    """SE (Hu et al. 2018): x · gate(fc2(act(fc1(avgpool(x))))), the FCs as biased 1×1 convolutions."""

    def __init__(self, channels: int, hidden: int, activation_name: str = "relu", gate: str = "sigmoid"):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = activation(activation_name)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.gate = nn.Hardsigmoid() if gate == "hard_sigmoid" else nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.act(self.fc1(_spatial_mean(x)))))


class CBAM(nn.Module):
    """CBAM (Woo et al. 2018), paper eqs. 2–3: x' = σ(MLP(avg) + MLP(max)) · x, then
    x'' = σ(conv_k([mean_c x'; max_c x'])) · x' (bias-free MLP and conv, as the equations)."""

    def __init__(self, channels: int, hidden: int, kernel_size: int = 7):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False), nn.ReLU(), nn.Conv2d(hidden, channels, 1, bias=False)
        )
        self.spatial = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * torch.sigmoid(self.mlp(_spatial_mean(x)) + self.mlp(x.amax((2, 3), keepdim=True)))
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


class BAM(nn.Module):
    """BAM (Park et al. 2018): x + x · σ(Mc(x) + Ms(x)). Mc = BN(MLP(avgpool x)); Ms = 1×1 reduce,
    `dilation_convs` dilated 3×3 convs (each BN + ReLU), 1×1 to one map, BN."""

    def __init__(self, channels: int, hidden: int, dilation: int = 4, dilation_convs: int = 2):
        super().__init__()
        self.channel = nn.Sequential(
            ConvBNAct(channels, hidden, 1, batch_normalize=False, activation_name="relu"),
            ConvBNAct(hidden, channels, 1, activation_name="linear"),
        )
        convs = [ConvBNAct(hidden, hidden, 3, dilation=dilation, activation_name="relu") for _ in range(dilation_convs)]
        self.spatial = nn.Sequential(
            ConvBNAct(channels, hidden, 1, activation_name="relu"),
            *convs,
            ConvBNAct(hidden, 1, 1, activation_name="linear"),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + x * torch.sigmoid(self.channel(_spatial_mean(x)) + self.spatial(x))


class SCSE(nn.Module):
    """scSE (Roy et al. 2018): channel SE plus spatial SE, x·σ(w·x) with a bias-free 1×1 conv, summed."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.cse = SqueezeExcite(channels, hidden)
        self.sse = nn.Conv2d(channels, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cse(x) + x * torch.sigmoid(self.sse(x))


class ECA(nn.Module):
    """ECA (Wang et al. 2020): x · σ(conv1d_k(avgpool x)), a bias-free 1-D conv across channels."""

    def __init__(self, k_size: int = 3):
        super().__init__()
        self.conv = nn.Conv1d(1, 1, k_size, padding=(k_size - 1) // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x.mean((2, 3)).unsqueeze(1)).squeeze(1)
        return x * torch.sigmoid(y)[:, :, None, None]


class _ContextTransform(nn.Sequential):
    """GCNet's bottleneck transform: 1×1 conv → LayerNorm over channels → ReLU → 1×1 conv."""

    def __init__(self, channels: int, hidden: int):
        super().__init__(
            nn.Conv2d(channels, hidden, 1), nn.LayerNorm([hidden, 1, 1]), nn.ReLU(), nn.Conv2d(hidden, channels, 1)
        )
        nn.init.zeros_(self[-1].weight)
        nn.init.zeros_(self[-1].bias)


class GlobalContext(nn.Module):
    """GCNet block (Cao et al. 2019): a global context vector (softmax attention pooling or average),
    transformed, then fused by multiplying x by σ(·) and/or adding it. The transforms' last convs start
    at zero (as GCNet), so a fresh `add` block is the identity and a fresh `mul` one halves x. The
    attention-pooling mask has no bias: the softmax would cancel it."""

    def __init__(self, channels: int, hidden: int, pooling: str = "att", fusion: tuple[str, ...] = ("add",)):
        super().__init__()
        self.mask = nn.Conv2d(channels, 1, 1, bias=False) if pooling == "att" else None
        self.mul = _ContextTransform(channels, hidden) if "mul" in fusion else None
        self.add = _ContextTransform(channels, hidden) if "add" in fusion else None

    def _context(self, x: torch.Tensor) -> torch.Tensor:
        if self.mask is None:
            return _spatial_mean(x)
        weights = self.mask(x).flatten(1).softmax(dim=1)
        return torch.einsum("bcn,bn->bc", x.flatten(2), weights)[:, :, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = self._context(x)
        if self.mul is not None:
            x = x * torch.sigmoid(self.mul(context))
        if self.add is not None:
            x = x + self.add(context)
        return x


class NonLocal(nn.Module):
    """Non-local block (Wang et al. 2018): z = x + W(Σ_j f(x_i, x_j) g(x_j)), f one of
    embedded_gaussian softmax(θᵀφ), gaussian softmax(xᵀx), dot θᵀφ/N, concat ReLU(w·[θ; φ])/N.
    φ and g are max-pooled by 2 when `sub_sample`; W (+ BN) starts at zero: a fresh block is the identity.
    φ has no bias in embedded_gaussian mode, where the softmax over j would cancel it."""

    def __init__(
        self,
        channels: int,
        inter: int,
        mode: str = "embedded_gaussian",
        sub_sample: bool = True,
        batch_normalize: bool = True,
    ):
        super().__init__()
        self.mode = mode
        self.inter = inter
        self.sub_sample = sub_sample
        embedded = mode != "gaussian"
        self.theta = nn.Conv2d(channels, inter, 1) if embedded else None
        self.phi = nn.Conv2d(channels, inter, 1, bias=mode in ("dot", "concat")) if embedded else None
        self.g = nn.Conv2d(channels, inter, 1)
        self.concat = nn.Conv2d(2 * inter, 1, 1, bias=False) if mode == "concat" else None
        self.out = ConvBNAct(inter, channels, 1, batch_normalize=batch_normalize, activation_name="linear")
        zeroed = self.out.bn if batch_normalize else self.out.conv
        nn.init.zeros_(zeroed.weight)
        nn.init.zeros_(zeroed.bias)

    def _pairwise(self, theta: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
        """f(x_i, x_j) as a (B, N, M) matrix from θ (B, k, H, W) and φ (B, k, H', W')."""
        if self.concat is not None:
            w_theta, w_phi = self.concat.weight.split(self.inter, dim=1)
            rows = F.conv2d(theta, w_theta).flatten(2).transpose(1, 2)
            cols = F.conv2d(phi, w_phi).flatten(2)
            return F.relu(rows + cols) / cols.shape[-1]
        energy = theta.flatten(2).transpose(1, 2) @ phi.flatten(2)
        if self.mode == "dot":
            return energy / energy.shape[-1]
        return energy.softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        theta = x if self.theta is None else self.theta(x)
        phi = x if self.phi is None else self.phi(x)
        g = self.g(x)
        if self.sub_sample:
            phi, g = F.max_pool2d(phi, 2), F.max_pool2d(g, 2)
        y = self._pairwise(theta, phi) @ g.flatten(2).transpose(1, 2)
        return x + self.out(y.transpose(1, 2).reshape(b, -1, h, w))


class CrissCross(nn.Module):
    """CCNet criss-cross attention (Huang et al. 2019), applied `recurrence` times with shared weights:
    each position attends (one softmax) over its column and its row, the centre counted once (in the
    row); x + γ·out with γ starting at zero, so a fresh block is the identity. The key conv has no
    bias: the softmax would cancel it."""

    def __init__(self, channels: int, query_channels: int, recurrence: int = 2):
        super().__init__()
        self.recurrence = recurrence
        self.query = nn.Conv2d(channels, query_channels, 1)
        self.key = nn.Conv2d(channels, query_channels, 1, bias=False)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        h = x.shape[2]
        q, k, v = self.query(x), self.key(x), self.value(x)
        centre = torch.eye(h, dtype=torch.bool, device=x.device).unsqueeze(1)
        column = torch.einsum("bchw,bckw->bhwk", q, k).masked_fill(centre, float("-inf"))
        row = torch.einsum("bchw,bchk->bhwk", q, k)
        weights = torch.cat([column, row], dim=-1).softmax(dim=-1)
        out = torch.einsum("bhwk,bckw->bchw", weights[..., :h], v)
        out = out + torch.einsum("bhwk,bchk->bchw", weights[..., h:], v)
        return x + self.gamma * out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.recurrence):
            x = self._attend(x)
        return x


class SelectiveKernel(nn.Module):
    """SK convolution (Li et al. 2019): `branches` grouped 3×3 convs with dilation 1, 2, … (BN + ReLU),
    fused by summing, squeezed to z = ReLU(BN(fc(avgpool))), and recombined with a per-channel
    softmax across branches (the branches' FCs stacked into one 1×1 conv)."""

    def __init__(
        self, in_channels: int, filters: int, branches: int = 2, groups: int = 32, hidden: int = 32, stride: int = 1
    ):
        super().__init__()
        self.branches = nn.ModuleList(
            ConvBNAct(in_channels, filters, 3, stride=stride, dilation=i + 1, groups=groups, activation_name="relu")
            for i in range(branches)
        )
        self.squeeze = ConvBNAct(filters, hidden, 1, activation_name="relu")
        self.select = nn.Conv2d(hidden, filters * branches, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = torch.stack([branch(x) for branch in self.branches], dim=1)
        b, m, c = feats.shape[:3]
        logits = self.select(self.squeeze(_spatial_mean(feats.sum(dim=1))))
        return (feats * logits.view(b, m, c, 1, 1).softmax(dim=1)).sum(dim=1)


class SplitAttention(nn.Module):
    """ResNeSt split-attention conv (Zhang et al. 2020): one conv to radix·filters (groups·radix groups,
    BN, ReLU), its radix splits summed, pooled, fc1 (BN, ReLU) and fc2 grouped by `groups`, then a
    softmax across the radix splits per channel (sigmoid when radix=1) weighting the splits' sum."""

    def __init__(
        self,
        in_channels: int,
        filters: int,
        size: int = 3,
        stride: int = 1,
        groups: int = 1,
        radix: int = 2,
        inter: int = 32,
    ):
        super().__init__()
        self.radix = radix
        self.groups = groups
        self.conv = ConvBNAct(
            in_channels,
            filters * radix,
            size,
            stride=stride,
            padding=size // 2,
            groups=groups * radix,
            activation_name="relu",
        )
        self.fc1 = ConvBNAct(filters, inter, 1, groups=groups, activation_name="relu")
        self.fc2 = nn.Conv2d(inter, filters * radix, 1, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.conv(x)
        b, _, h, w = u.shape
        splits = u.view(b, self.radix, -1, h, w)
        c = splits.shape[2]
        logits = self.fc2(self.fc1(_spatial_mean(splits.sum(dim=1))))
        if self.radix > 1:
            weights = logits.view(b, self.groups, self.radix, -1).transpose(1, 2).softmax(dim=1)
        else:
            weights = torch.sigmoid(logits)
        return (splits * weights.reshape(b, self.radix, c, 1, 1)).sum(dim=1)


class GAM(nn.Module):
    """GAM (Liu et al. 2021): x·σ(MLP over channels at every pixel), then ·σ(two 7×7 convs with BN,
    ReLU between, reducing to channels/rate and back)."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.channel = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels))
        self.spatial = nn.Sequential(
            ConvBNAct(channels, hidden, 7, activation_name="relu"),
            ConvBNAct(hidden, channels, 7, activation_name="linear"),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * torch.sigmoid(self.channel(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))
        return x * torch.sigmoid(self.spatial(x))


class CoordAttention(nn.Module):
    """Coordinate attention (Hou et al. 2021): pool along W and along H, one shared 1×1 conv + BN +
    hard-swish over both, then per-direction 1×1 convs and sigmoids: x · a_h · a_w."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.squeeze = ConvBNAct(channels, hidden, 1, activation_name="linear")
        self.gate_h = nn.Conv2d(hidden, channels, 1)
        self.gate_w = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        pooled = torch.cat([x.mean(3, keepdim=True), x.mean(2, keepdim=True).transpose(2, 3)], dim=2)
        y_h, y_w = F.hardswish(self.squeeze(pooled)).split([h, w], dim=2)
        return x * torch.sigmoid(self.gate_h(y_h)) * torch.sigmoid(self.gate_w(y_w.transpose(2, 3)))


class SimAM(nn.Module):
    """SimAM (Yang et al. 2021), parameter-free: x · σ(d / (4(Σd/n + λ)) + 1/2), d = (x − μ)² per
    channel, n = H·W − 1."""

    def __init__(self, e_lambda: float = 1e-4):
        super().__init__()
        self.e_lambda = e_lambda

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[2] * x.shape[3] - 1
        d = (x - x.mean((2, 3), keepdim=True)).pow(2)
        variance = d.sum((2, 3), keepdim=True) / n
        return x * torch.sigmoid(d / (4 * (variance + self.e_lambda)) + 0.5)


class _ZPoolGate(nn.Module):
    """One triplet branch: x · σ(BN(conv_k([max; mean] over dim 1)))."""

    def __init__(self, kernel_size: int):
        super().__init__()
        self.conv = ConvBNAct(2, 1, kernel_size, activation_name="linear")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class TripletAttention(nn.Module):
    """Triplet attention (Misra et al. 2021): the same Z-pool gate on x rotated to pool over H (C–W
    interaction), over W (H–C) and, unless `no_spatial`, over C (H–W); rotated back and averaged."""

    def __init__(self, kernel_size: int = 7, no_spatial: bool = False):
        super().__init__()
        self.cw = _ZPoolGate(kernel_size)
        self.hc = _ZPoolGate(kernel_size)
        self.hw = None if no_spatial else _ZPoolGate(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cw = self.cw(x.permute(0, 2, 1, 3)).permute(0, 2, 1, 3)
        hc = self.hc(x.permute(0, 3, 2, 1)).permute(0, 3, 2, 1)
        if self.hw is None:
            return (cw + hc) / 2
        return (cw + hc + self.hw(x)) / 3


class FANBlock(nn.Module):
    """A FAN block (Zhou et al. 2022) on the H·W tokens of a feature map, pre-norm and residual:
    t += proj(MHSA(LN(t))); then with u = LN(t), t += a ⊙ LN_v(MLP(u)), the attentional channel
    processing: per head, a_c = τ_head · σ(Σ_n softmax_n(q)[n, c] · mean_c' softmax_n(u)[n, c']),
    q = Linear(u) without bias (the softmax over tokens would cancel it), MLP = Linear → GELU →
    Linear (C·mlp_ratio hidden), no projection after it."""

    def __init__(self, channels: int, heads: int = 8, hidden: int = 32):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.norm2 = nn.LayerNorm(channels)
        self.q = nn.Linear(channels, channels, bias=False)
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels))
        self.norm_v = nn.LayerNorm(channels)

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        """(B, N, C) → (B, heads, N, C / heads)."""
        b, n, c = t.shape
        return t.view(b, n, self.heads, c // self.heads).transpose(1, 2)

    def _token_attention(self, t: torch.Tensor) -> torch.Tensor:
        q, k, v = (self._split_heads(part) for part in self.qkv(t).chunk(3, dim=-1))
        weights = (q @ k.transpose(2, 3) * q.shape[-1] ** -0.5).softmax(dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(t.shape))

    def _channel_attention(self, t: torch.Tensor) -> torch.Tensor:
        q = self._split_heads(self.q(t)).softmax(dim=2)
        k = self._split_heads(t).softmax(dim=2).mean(dim=3, keepdim=True)
        gate = torch.sigmoid(q.transpose(2, 3) @ k) * self.temperature
        return self.norm_v(self.mlp(t)) * gate.reshape(t.shape[0], 1, t.shape[2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)
        t = t + self._token_attention(self.norm1(t))
        t = t + self._channel_attention(self.norm2(t))
        return t.transpose(1, 2).reshape(b, c, h, w)
