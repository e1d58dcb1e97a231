"""Attention blocks: each reads the previous layer and, except `[sk]` and `[splat]`, keeps its shape.

Hidden widths are `max(1, C // reduction)` unless a section says otherwise (C = input channels).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from ..geometry import ConvGeometry, same_output
from ..modules import attention as m
from ..registry import register
from ..section import Context, LayerCall, Section, SpecError
from ..values import Activation, Flag, Shape

FAMILY = "attention"


def _hidden(channels: int, reduction: int) -> int:
    """Bottleneck width: C // reduction, at least 1."""
    return max(1, channels // reduction)


@register("se", family=FAMILY)
class SE(Section):
    """`[se]`: Squeeze-and-Excitation (Hu et al. 2018): x · gate(fc2(act(fc1(avgpool x)))), the FCs
    biased 1×1 convolutions (as darknet's `[avgpool]`, two `[convolutional]`, `[scale_channels]`),
    hidden width max(1, C // reduction). `activation` is a darknet name; `gate=hard_sigmoid` is
    PyTorch's F.hardsigmoid, relu6(x + 3) / 6."""

    example: ClassVar[str] = "[se]\nreduction=4\n"

    reduction: int = Field(16, gt=0)
    activation: Activation = "relu"
    gate: Literal["sigmoid", "hard_sigmoid"] = "sigmoid"

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        c = shapes[0][0]
        return LayerCall(
            m.SqueezeExcite,
            dict(channels=c, hidden=_hidden(c, self.reduction), activation_name=self.activation, gate=self.gate),
        )


def _one_spelling(data: Any, synonyms: dict[str, str], model: str) -> Any:
    """Refuse a key given under both of its spellings, reporting it at the synonym."""
    if not isinstance(data, dict):
        return data
    for synonym, key in synonyms.items():
        if synonym in data and key in data:
            error = PydanticCustomError("synonym", f"{synonym} is a synonym of {key}: give one of them, not both")
            raise ValidationError.from_exception_data(
                model, [InitErrorDetails(type=error, loc=(synonym,), input=data[synonym])]
            )
    return data


@register("cbam", family=FAMILY)
class CBAM(Section):
    """`[cbam]`: CBAM (Woo et al. 2018), channel attention σ(MLP(avgpool) + MLP(maxpool)) (shared
    bias-free MLP, hidden max(1, C // reduction)) then spatial attention σ(conv_k([mean_c; max_c])).
    `ratio` and `kernelsize` are accepted for `reduction` and `kernel_size` (GiantPandaCV's cfgs)."""

    example: ClassVar[str] = "[cbam]\nreduction=4\nkernel_size=3\n"

    reduction: int = Field(16, gt=0)
    kernel_size: int = 7
    ratio: int | None = Field(None, gt=0)
    kernelsize: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_spelling_each(cls, data: Any) -> Any:
        return _one_spelling(data, {"ratio": "reduction", "kernelsize": "kernel_size"}, "cbam")

    @field_validator("kernel_size", "kernelsize")
    @classmethod
    def _three_or_seven(cls, value: int | None) -> int | None:
        if value not in (None, 3, 7):
            raise ValueError(f"the spatial kernel must be 3 or 7, not {value}")
        return value

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        c = shapes[0][0]
        reduction = self.ratio or self.reduction
        kernel = self.kernelsize or self.kernel_size
        return LayerCall(m.CBAM, dict(channels=c, hidden=_hidden(c, reduction), kernel_size=kernel))


@register("bam", family=FAMILY)
class BAM(Section):
    """`[bam]`: BAM (Park et al. 2018), x + x·σ(Mc(x) + Ms(x)): Mc a BN'd MLP on the pooled channels,
    Ms a 1×1 reduction, `dilation_convs` 3×3 convs of `dilation` (BN + ReLU each) and a 1×1 conv to
    one BN'd map; hidden max(1, C // reduction)."""

    example: ClassVar[str] = "[bam]\nreduction=4\ndilation=2\n"

    reduction: int = Field(16, gt=0)
    dilation: int = Field(4, gt=0)
    dilation_convs: int = Field(2, ge=0)

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        c = shapes[0][0]
        return LayerCall(
            m.BAM,
            dict(
                channels=c,
                hidden=_hidden(c, self.reduction),
                dilation=self.dilation,
                dilation_convs=self.dilation_convs,
            ),
        )


@register("scse", family=FAMILY)
class SCSE(Section):
    """`[scse]`: concurrent spatial and channel SE (Roy et al. 2018), cSE(x) + sSE(x); the cSE hidden
    width is max(1, C // reduction)."""

    example: ClassVar[str] = "[scse]\n"

    reduction: int = Field(2, gt=0)

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        c = shapes[0][0]
        return LayerCall(m.SCSE, dict(channels=c, hidden=_hidden(c, self.reduction)))


def eca_kernel(channels: int, gamma: int = 2, b: int = 1) -> int:
    """ECA-Net's adaptive kernel: t = int(|(log2 C + b) / γ|), made odd by adding one."""
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


@register("eca", family=FAMILY)
class ECA(Section):
    """`[eca]`: ECA-Net channel attention (Wang et al. 2020), a 1-D conv of odd size `k_size` across
    the pooled channels; by default k from C with γ=2, b=1 (`eca_kernel`)."""

    example: ClassVar[str] = "[eca]\n"

    k_size: int | None = Field(None, gt=0)

    @field_validator("k_size")
    @classmethod
    def _odd(cls, value: int | None) -> int | None:
        if value is not None and value % 2 == 0:
            raise ValueError(f"k_size must be odd to keep the channel count, not {value}")
        return value

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.ECA, dict(k_size=self.k_size or eca_kernel(shapes[0][0])))


@register("gc", family=FAMILY)
class GC(Section):
    """`[gc]`: GCNet global context block (Cao et al. 2019): context by softmax attention pooling
    (`att`) or average (`avg`), bottleneck of max(1, int(C · ratio)) with LayerNorm, fused by `add`,
    `mul` (x·σ(·)) or both (`add,mul`); the last convs start at zero as GCNet's."""

    example: ClassVar[str] = "[gc]\nratio=0.25\nfusion=add,mul\n"

    ratio: float = Field(0.0625, gt=0)
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
                inter=_hidden(c, self.reduction),
                mode=self.mode,
                sub_sample=self.sub_sample,
                batch_normalize=self.bn,
            ),
        )

    def bflops(self, shapes: list[Shape], output: Shape) -> float | None:
        """1×1 convs plus the N×M pairwise matrix and its product with g."""
        c, h, w = shapes[0]
        k, n = _hidden(c, self.reduction), h * w
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

    recurrence: int = Field(2, gt=0)

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        c = shapes[0][0]
        return LayerCall(m.CrissCross, dict(channels=c, query_channels=_hidden(c, 8), recurrence=self.recurrence))

    def bflops(self, shapes: list[Shape], output: Shape) -> float | None:
        """Per application: 1×1 convs, column and row energies, and the weighted sums of values."""
        c, h, w = shapes[0]
        q, n = _hidden(c, 8), h * w
        per_step = (2 * q + c) * c * n + (q + c) * n * (h + w)
        return 2 * self.recurrence * per_step / 1e9


@register("sk", family=FAMILY)
class SK(Section):
    """`[sk]`: SKNet selective kernel convolution (Li et al. 2019) to `filters` channels (default: the
    input's): `branches` grouped 3×3 convs with dilation 1, 2, … and stride `stride`, selected by a
    softmax from z of width max(filters // reduction, min_dim)."""

    example: ClassVar[str] = "[sk]\nfilters=16\ngroups=4\nmin_dim=8\nstride=2\n"

    filters: int | None = Field(None, gt=0)
    branches: int = Field(2, gt=0)
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
    radix: int = Field(2, gt=0)
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


@register("gam", family=FAMILY)
class GAM(Section):
    """`[gam]`: GAM global attention (Liu et al. 2021), channel MLP then 7×7 conv spatial attention,
    both through max(1, C // rate) channels."""

    example: ClassVar[str] = "[gam]\n"

    rate: int = Field(4, gt=0)

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        c = shapes[0][0]
        return LayerCall(m.GAM, dict(channels=c, hidden=_hidden(c, self.rate)))


@register("ca", family=FAMILY)
class CA(Section):
    """`[ca]`: coordinate attention (Hou et al. 2021); the shared conv has max(8, C // reduction)
    channels, the floor of the authors' code."""

    example: ClassVar[str] = "[ca]\n"

    reduction: int = Field(32, gt=0)

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        c = shapes[0][0]
        return LayerCall(m.CoordAttention, dict(channels=c, hidden=max(8, c // self.reduction)))


@register("simam", family=FAMILY)
class SimAM(Section):
    """`[simam]`: SimAM (Yang et al. 2021), parameter-free energy-based attention with regulariser
    `lambda`; needs at least two pixels."""

    example: ClassVar[str] = "[simam]\n"

    lambda_: float = Field(1e-4, alias="lambda", gt=0)

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        c, h, w = shapes[0]
        if h * w < 2:
            raise SpecError(f"SimAM's variance needs at least two pixels; the input is {c}×{h}×{w} (C×H×W)")
        return shapes[0]

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.SimAM, dict(e_lambda=self.lambda_))


@register("triplet", family=FAMILY)
class Triplet(Section):
    """`[triplet]`: triplet attention (Misra et al. 2021), three rotated Z-pool gates with odd
    `kernel_size` convs, averaged; `no_spatial=1` drops the plain H–W branch."""

    example: ClassVar[str] = "[triplet]\nkernel_size=3\n"

    kernel_size: int = Field(7, gt=0)
    no_spatial: Flag = False

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"kernel_size must be odd to keep the size, not {value}")
        return value

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.TripletAttention, dict(kernel_size=self.kernel_size, no_spatial=self.no_spatial))


@register("fan", family=FAMILY)
class FAN(Section):
    """`[fan]`: a FAN block (Zhou et al. 2022, "Understanding The Robustness in Vision Transformers")
    on the H·W tokens: multi-head self-attention with `heads` heads, then FAN's attentional channel
    processing (an MLP of C·mlp_ratio hidden units gated per channel by attention over the tokens),
    each pre-LayerNorm and residual. Simplified from FAN: no layer scale (FAN starts it at 1), no
    depth-wise conv in the MLP, no drop path. `heads` must divide C."""

    example: ClassVar[str] = "[fan]\nheads=2\nmlp_ratio=2\n"

    heads: int = Field(8, gt=0)
    mlp_ratio: float = Field(4.0, gt=0)

    def _hidden(self, channels: int) -> int:
        return max(1, int(channels * self.mlp_ratio))

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        c = shapes[0][0]
        if c % self.heads:
            raise SpecError(f"heads={self.heads} must divide the input channels {c}", "heads")
        return shapes[0]

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        c = shapes[0][0]
        return LayerCall(m.FANBlock, dict(channels=c, heads=self.heads, hidden=self._hidden(c)))

    def bflops(self, shapes: list[Shape], output: Shape) -> float | None:
        """Linear layers, the N×N token attention and the per-channel gate products."""
        c, h, w = shapes[0]
        n = h * w
        linear = n * c * (3 * c + c + c + 2 * self._hidden(c))
        return 2 * (linear + 2 * n * n * c + n * c) / 1e9
