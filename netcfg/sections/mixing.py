"""Attention that mixes positions or branches: global context `[gc]`, non-local `[nonlocal]`,
criss-cross `[cc]`, selective kernels `[sk]`, split attention `[splat]` and FAN's token mixing `[fan]`."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from ..geometry import ConvGeometry, same_output
from ..modules import attention as m
from ..registry import register
from ..section import Context, LayerCall, Section, SpecError
from ..values import Flag, Shape
from .attention import FAMILY, hidden_channels


@register("gc", family=FAMILY)
class GC(Section):
    """`[gc]`: GCNet global context block (Cao et al. 2019): context by softmax attention pooling
    (`att`) or average (`avg`), bottleneck of max(1, int(C · ratio)) with LayerNorm, fused by `add`,
    `mul` (x·σ(·)) or both (`add,mul`); the last convs start at zero as GCNet's."""

    example: ClassVar[str] = "[gc]\nratio=0.25\nfusion=add,mul\n"

    ratio: float = Field(0.0625, gt=0, le=64)
    pooling: Literal["att", "avg"] = "att"
    fusion: tuple[Literal["add", "mul"], ...] = Field(("add",), min_length=1)

    @field_validator("fusion", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return [item for item in value.replace(" ", "").split(",") if item] if isinstance(value, str) else value

    @field_validator("fusion")
    @classmethod
    def _distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError(f"fusion lists {value} with a repeat; use add, mul or add,mul")
        return value

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        c = shapes[0][0]
        hidden = max(1, int(c * self.ratio))
        return LayerCall(m.GlobalContext, dict(channels=c, hidden=hidden, pooling=self.pooling, fusion=self.fusion))


@register("nonlocal", family=FAMILY)
class NonLocal(Section):
    """`[nonlocal]`: non-local block (Wang et al. 2018) with inter channels max(1, C // reduction);
    `mode` picks f (embedded_gaussian, gaussian, dot, concat); `sub_sample=1` max-pools φ and g by 2;
    the output projection W (+ BN when `bn=1`) starts at zero, so a fresh block is the identity."""

    example: ClassVar[str] = "[nonlocal]\n"

    reduction: int = Field(2, gt=0)
    mode: Literal["embedded_gaussian", "gaussian", "dot", "concat"] = "embedded_gaussian"
    sub_sample: Flag = True
    bn: Flag = True

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        c, h, w = shapes[0]
        if self.sub_sample and min(h, w) < 2:
            raise SpecError(f"sub_sample=1 max-pools by 2, but the input is {c}×{h}×{w} (C×H×W)", "sub_sample")
        return shapes[0]

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        c = shapes[0][0]
        return LayerCall(
            m.NonLocal,
            dict(
                channels=c,
                inter=hidden_channels(c, self.reduction),
                mode=self.mode,
                sub_sample=self.sub_sample,
                batch_normalize=self.bn,
            ),
        )

    def bflops(self, shapes: list[Shape], output: Shape) -> float | None:
        """1×1 convs plus the N×M pairwise matrix and its product with g."""
        c, h, w = shapes[0]
        k, n = hidden_channels(c, self.reduction), h * w
        m_ = (h // 2) * (w // 2) if self.sub_sample else n
        embedded = self.mode != "gaussian"
        convs = (3 if embedded else 1) * c * k * n + k * c * n
        pairwise = k * (n + m_) if self.mode == "concat" else (k if embedded else c) * n * m_
        return 2 * (convs + pairwise + n * m_ * k) / 1e9


@register("cc", family=FAMILY)
class CC(Section):
    """`[cc]`: CCNet criss-cross attention (Huang et al. 2019), query/key width max(1, C // 8), γ
    starting at zero; applied `recurrence` times with shared weights."""

    example: ClassVar[str] = "[cc]\n"

    recurrence: int = Field(2, gt=0, le=16)

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        c = shapes[0][0]
        return LayerCall(
            m.CrissCross, dict(channels=c, query_channels=hidden_channels(c, 8), recurrence=self.recurrence)
        )

    def bflops(self, shapes: list[Shape], output: Shape) -> float | None:
        """Per application: 1×1 convs, column and row energies, and the weighted sums of values."""
        c, h, w = shapes[0]
        q, n = hidden_channels(c, 8), h * w
        per_step = (2 * q + c) * c * n + (q + c) * n * (h + w)
        return 2 * self.recurrence * per_step / 1e9


@register("sk", family=FAMILY)
class SK(Section):
    """`[sk]`: SKNet selective kernel convolution (Li et al. 2019) to `filters` channels (default: the
    input's): `branches` grouped 3×3 convs with dilation 1, 2, … and stride `stride`, selected by a
    softmax from z of width max(filters // reduction, min_dim)."""

    example: ClassVar[str] = "[sk]\nfilters=16\ngroups=4\nmin_dim=8\nstride=2\n"

    filters: int | None = Field(None, gt=0)
    branches: int = Field(2, gt=0, le=64)  # each is a module: bounded so a build cannot hang
    groups: int = Field(32, gt=0)
    reduction: int = Field(16, gt=0)
    min_dim: int = Field(32, gt=0)
    stride: int = Field(1, gt=0)

    def _filters(self, shapes: list[Shape]) -> int:
        return self.filters or shapes[0][0]

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        c = shapes[0][0]
        filters = self._filters(shapes)
        if c % self.groups or filters % self.groups:
            raise SpecError(f"groups={self.groups} must divide input channels {c} and filters={filters}", "groups")
        return same_output(shapes[0], filters, self.stride)

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        filters = self._filters(shapes)
        return LayerCall(
            m.SelectiveKernel,
            dict(
                in_channels=shapes[0][0],
                filters=filters,
                branches=self.branches,
                groups=self.groups,
                hidden=max(filters // self.reduction, self.min_dim),
                stride=self.stride,
            ),
        )


@register("splat", family=FAMILY)
class Splat(Section):
    """`[splat]`: ResNeSt split-attention convolution (Zhang et al. 2020) to `filters` channels:
    a size×size conv (padding size // 2) to radix·filters in groups·radix groups, then attention
    across the radix splits with inter width max(C_in · radix // reduction, 32), as ResNeSt's
    SplAtConv2d; `groups` is ResNeSt's cardinality."""

    example: ClassVar[str] = "[splat]\nfilters=16\n"

    filters: int = Field(gt=0)
    size: int = Field(3, gt=0)
    stride: int = Field(1, gt=0)
    groups: int = Field(1, gt=0)
    radix: int = Field(2, gt=0, le=64)
    reduction: int = Field(4, gt=0)

    def _inter(self, channels: int) -> int:
        return max(channels * self.radix // self.reduction, 32)

    @property
    def geometry(self) -> ConvGeometry:
        """The split convolution: size // 2 pixels of padding, groups·radix groups."""
        return ConvGeometry.square(self.size, self.stride, self.size // 2, groups=self.groups * self.radix)

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        c = shapes[0][0]
        g, r = self.groups, self.radix
        if c % (g * r):
            key = "groups" if c % g else "radix"
            raise SpecError(f"groups·radix = {g}·{r} must divide the input channels {c}", key)
        if self.filters % g or self._inter(c) % g:
            raise SpecError(
                f"groups={g} must divide filters={self.filters} and the inter width {self._inter(c)}", "groups"
            )
        return self.geometry.output(shapes[0], self.filters)

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        c = shapes[0][0]
        return LayerCall(
            m.SplitAttention,
            dict(
                in_channels=c,
                filters=self.filters,
                size=self.size,
                stride=self.stride,
                groups=self.groups,
                radix=self.radix,
                inter=self._inter(c),
            ),
        )


@register("fan", family=FAMILY)
class FAN(Section):
    """`[fan]`: a FAN block (Zhou et al. 2022, "Understanding The Robustness in Vision Transformers")
    on the H·W tokens: multi-head self-attention with `heads` heads, then FAN's attentional channel
    processing (an MLP of C·mlp_ratio hidden units gated per channel by attention over the tokens),
    each pre-LayerNorm and residual. Simplified from FAN: no layer scale (FAN starts it at 1), no
    depth-wise conv in the MLP, no drop path. `heads` must divide C."""

    example: ClassVar[str] = "[fan]\nheads=2\nmlp_ratio=2\n"

    heads: int = Field(8, gt=0)
    mlp_ratio: float = Field(4.0, gt=0, le=64)

    def hidden_channels(self, channels: int) -> int:
        return max(1, int(channels * self.mlp_ratio))

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        c = shapes[0][0]
        if c % self.heads:
            raise SpecError(f"heads={self.heads} must divide the input channels {c}", "heads")
        return shapes[0]

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        c = shapes[0][0]
        return LayerCall(m.FANBlock, dict(channels=c, heads=self.heads, hidden=self.hidden_channels(c)))

    def bflops(self, shapes: list[Shape], output: Shape) -> float | None:
        """Linear layers, the N×N token attention and the per-channel gate products."""
        c, h, w = shapes[0]
        n = h * w
        linear = n * c * (3 * c + c + c + 2 * self.hidden_channels(c))
        return 2 * (linear + 2 * n * n * c + n * c) / 1e9
