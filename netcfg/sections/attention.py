"""Attention blocks: each reads the previous layer and, except `[sk]` and `[splat]`, keeps its shape.

Hidden widths are `max(1, C // reduction)` unless a section says otherwise (C = input channels).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from ..modules import attention as m
from ..registry import register
from ..section import Context, LayerCall, Section, SpecError
from ..values import Activation, Flag, Shape

FAMILY = "attention"


def hidden_channels(channels: int, reduction: int) -> int:
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
            dict(
                channels=c, hidden=hidden_channels(c, self.reduction), activation_name=self.activation, gate=self.gate
            ),
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
        return LayerCall(m.CBAM, dict(channels=c, hidden=hidden_channels(c, reduction), kernel_size=kernel))


@register("bam", family=FAMILY)
class BAM(Section):
    """`[bam]`: BAM (Park et al. 2018), x + x·σ(Mc(x) + Ms(x)): Mc a BN'd MLP on the pooled channels,
    Ms a 1×1 reduction, `dilation_convs` 3×3 convs of `dilation` (BN + ReLU each) and a 1×1 conv to
    one BN'd map; hidden max(1, C // reduction)."""

    example: ClassVar[str] = "[bam]\nreduction=4\ndilation=2\n"

    reduction: int = Field(16, gt=0)
    dilation: int = Field(4, gt=0)
    dilation_convs: int = Field(2, ge=0, le=16)  # each is a module: bounded so a build cannot hang

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        c = shapes[0][0]
        return LayerCall(
            m.BAM,
            dict(
                channels=c,
                hidden=hidden_channels(c, self.reduction),
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
        return LayerCall(m.SCSE, dict(channels=c, hidden=hidden_channels(c, self.reduction)))


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


@register("gam", family=FAMILY)
class GAM(Section):
    """`[gam]`: GAM global attention (Liu et al. 2021), channel MLP then 7×7 conv spatial attention,
    both through max(1, C // rate) channels."""

    example: ClassVar[str] = "[gam]\n"

    rate: int = Field(4, gt=0)

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        c = shapes[0][0]
        return LayerCall(m.GAM, dict(channels=c, hidden=hidden_channels(c, self.rate)))


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
