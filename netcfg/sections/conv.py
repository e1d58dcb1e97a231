"""Convolution variants: deformable (DCN v1/v2), CoordConv, Ghost, BlurPool, ACNet, BlazeBlock,
depthwise-separable, MixConv, ODConv and RefConv."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from ..geometry import ConvGeometry, same_output
from ..modules import conv as m
from ..modules import dynamic, reparam
from ..registry import register
from ..section import Context, LayerCall, Section, SpecError
from ..values import Activation, Flag, IntList, Shape
from .darknet import ConvolutionKeys


def _odd(value: int, key: str) -> int:
    if value % 2 == 0:
        raise ValueError(f"{key}={value} must be odd so the kernel has a centre")
    return value


class ConvVariant(ConvolutionKeys):
    """A convolution variant: the keys, defaults and geometry every convolution honours (see
    `ConvolutionKeys`), and the module arguments they give."""

    def conv_kwargs(self, shapes: list[Shape]) -> dict[str, Any]:
        """The module arguments every variant takes; padding in pixels."""
        geometry = self.geometry
        return dict(
            in_channels=shapes[0][0],
            filters=self.filters,
            size=self.size,
            stride=geometry.strides,
            padding=geometry.padding[0],
            groups=geometry.groups,
            dilation=geometry.dilation,
            batch_normalize=self.batch_normalize,
            activation_name=self.activation,
        )

    def conv_macs(self, shapes: list[Shape]) -> int:
        """Multiply-adds of the plain convolution with these keys."""
        geometry = self.geometry
        _, out_h, out_w = geometry.output(shapes[0], self.filters)
        kh, kw = geometry.kernel
        return self.filters * shapes[0][0] // geometry.groups * kh * kw * out_h * out_w


@register("dcn", family="conv")
class DeformableConvSection(ConvVariant):
    """`[dcn]`: deformable convolution, v1 (offsets) or v2 (offsets + modulation); offsets and
    modulation are predicted by a zero-initialised conv over the input."""

    example: ClassVar[str] = (
        "[dcn]\nfilters=8\nsize=3\npad=1\nbatch_normalize=1\nactivation=leaky\ndeformable_groups=2\n"
    )

    deformable_groups: int = Field(1, gt=0)
    version: int = Field(2, ge=1, le=2)

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        if shapes[0][0] % self.deformable_groups:
            raise SpecError(
                f"deformable_groups={self.deformable_groups} must divide the input channels {shapes[0][0]}",
                "deformable_groups",
            )
        return super().infer(shapes, ctx)

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        kwargs = self.conv_kwargs(shapes)
        return LayerCall(m.DeformConv, dict(kwargs, deformable_groups=self.deformable_groups, version=self.version))

    def bflops(self, shapes: list[Shape], output: Shape) -> float:
        taps = self.size * self.size
        offset_channels = self.deformable_groups * taps * (3 if self.version == 2 else 2)
        offset_macs = offset_channels * shapes[0][0] * taps * output[1] * output[2]
        return 2 * (self.conv_macs(shapes) + offset_macs) / 1e9


@register("coordconv", family="conv")
class CoordConvSection(ConvVariant):
    """`[coordconv]`: x, y (and radius with `with_r=1`) channels in [−1, 1] appended to the input
    of a `[convolutional]`."""

    example: ClassVar[str] = "[coordconv]\nfilters=8\nsize=3\npad=1\nbatch_normalize=1\nactivation=leaky\nwith_r=1\n"

    with_r: Flag = False

    @property
    def coord_channels(self) -> int:
        return 3 if self.with_r else 2

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        c, h, w = shapes[0]
        try:
            return super().infer([(c + self.coord_channels, h, w)], ctx)
        except SpecError as exc:
            note = f" (input channels include {self.coord_channels} coordinates)"
            raise SpecError(exc.message + note, exc.key) from exc

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.CoordConv, dict(self.conv_kwargs(shapes), with_r=self.with_r))


@register("ghost", family="conv")
class GhostSection(Section):
    """`[ghost]`: GhostNet module, a primary conv to ⌈filters/ratio⌉ maps plus cheap depthwise
    "ghost" maps, concatenated and trimmed to `filters`."""

    example: ClassVar[str] = "[ghost]\nfilters=12\nratio=3\nstride=2\n"

    filters: int = Field(gt=0)
    size: int = Field(1, gt=0)
    ratio: int = Field(2, gt=1)
    dw_size: int = Field(3, gt=0)
    stride: int = Field(1, gt=0)
    relu: Flag = True

    @field_validator("dw_size")
    @classmethod
    def _dw_size_odd(cls, value: int) -> int:
        return _odd(value, "dw_size")

    @property
    def geometry(self) -> ConvGeometry:
        """The primary convolution, which sets the output size (padding size // 2)."""
        return ConvGeometry.square(self.size, self.stride, self.size // 2)

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        return self.geometry.output(shapes[0], self.filters)

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(
            m.Ghost,
            dict(
                in_channels=shapes[0][0],
                filters=self.filters,
                size=self.size,
                ratio=self.ratio,
                dw_size=self.dw_size,
                stride=self.geometry.strides[0],
                relu=self.relu,
            ),
        )


@register("blurpool", family="conv")
class BlurPoolSection(Section):
    """`[blurpool]`: anti-aliased downsampling, a normalised binomial blur then subsampling."""

    example: ClassVar[str] = "[blurpool]\nfilt_size=4\nstride=2\npad_type=replicate\n"

    filt_size: int = Field(3, ge=1, le=7)
    stride: int = Field(2, gt=0)
    pad_type: Literal["reflect", "replicate", "zero"] = "reflect"

    @property
    def geometry(self) -> ConvGeometry:
        """The depthwise blur: filt_size − 1 pixels of padding, (filt_size − 1) // 2 of them left/top."""
        before = (self.filt_size - 1) // 2
        return ConvGeometry((self.filt_size,) * 2, (self.stride,) * 2, (before, self.filt_size - 1 - before))

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        c, h, w = shapes[0]
        pad = max(self.geometry.padding)
        if self.pad_type == "reflect" and pad >= min(h, w):
            raise SpecError(
                f"reflect padding of {pad} needs an input larger than {pad}×{pad}, got {h}×{w}; use "
                "pad_type=replicate or zero",
                "pad_type",
            )
        return self.geometry.output(shapes[0], c)

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(
            m.BlurPool,
            dict(channels=shapes[0][0], filt_size=self.filt_size, stride=self.stride, pad_type=self.pad_type),
        )

    def bflops(self, shapes: list[Shape], output: Shape) -> float:
        c, h, w = output
        kh, kw = self.geometry.kernel
        return 2 * c * kh * kw * h * w / 1e9


@register("acb", family="conv")
class AsymmetricConvSection(ConvVariant):
    """`[acb]`: ACNet block, k×k + 1×k + k×1 convolutions each with batch norm, summed; `fuse()`
    collapses it into one k×k convolution."""

    example: ClassVar[str] = "[acb]\nfilters=8\nsize=3\npad=1\nbatch_normalize=1\nactivation=leaky\n"

    @field_validator("size")
    @classmethod
    def _size_odd(cls, value: int) -> int:
        return _odd(value, "size")

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(reparam.AsymmetricConv, self.conv_kwargs(shapes))


@register("blaze", family="conv")
class BlazeSection(Section):
    """`[blaze]`: BlazeFace BlazeBlock, single (to `filters`) or double (to `filters`, then `filters2`),
    with a max-pooled, zero-channel-padded shortcut."""

    example: ClassVar[str] = "[blaze]\nfilters=12\nfilters2=16\nstride=2\n"

    filters: int = Field(gt=0)
    filters2: int | None = Field(None, gt=0)
    size: int = Field(5, gt=0)
    stride: int = Field(1, ge=1, le=2)

    @field_validator("size")
    @classmethod
    def _size_odd(cls, value: int) -> int:
        return _odd(value, "size")

    @property
    def geometry(self) -> ConvGeometry:
        """The strided depthwise convolution, 'same'-padded (size // 2)."""
        return ConvGeometry.square(self.size, self.stride, self.size // 2)

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        c = shapes[0][0]
        key, out = ("filters", self.filters) if self.filters2 is None else ("filters2", self.filters2)
        if out < c:
            raise SpecError(f"{key}={out} is below the input channels {c}: the shortcut can only pad channels", key)
        return self.geometry.output(shapes[0], out)

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(
            m.BlazeBlock,
            dict(
                in_channels=shapes[0][0],
                filters=self.filters,
                filters2=self.filters2,
                size=self.size,
                stride=self.stride,
            ),
        )


@register("dwconv", family="conv")
class DepthwiseSeparableSection(Section):
    """`[dwconv]`: depthwise k×k conv + BN + activation, then pointwise 1×1 conv + BN + activation."""

    example: ClassVar[str] = "[dwconv]\nfilters=16\nsize=3\nstride=2\nactivation=leaky\n"

    filters: int = Field(gt=0)
    size: int = Field(3, gt=0)
    stride: int = Field(1, gt=0)
    dilation: int = Field(1, gt=0)
    batch_normalize: Flag = True
    activation: Activation = "relu"

    @property
    def geometry(self) -> ConvGeometry:
        """The depthwise convolution (groups = input channels), padded by dilation·(size − 1) // 2 pixels."""
        return ConvGeometry.square(self.size, self.stride, self.dilation * (self.size - 1) // 2, self.dilation)

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        return self.geometry.output(shapes[0], self.filters)

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(
            m.DepthwiseSeparable,
            dict(
                in_channels=shapes[0][0],
                filters=self.filters,
                size=self.size,
                stride=self.stride,
                dilation=self.dilation,
                batch_normalize=self.batch_normalize,
                activation_name=self.activation,
            ),
        )


def channel_split(total: int, sizes: tuple[int, ...], method: str) -> tuple[int, ...]:
    """MixConv's channel partition over kernel sizes. `equal_ch`: equal groups, the remainder to the
    first (as MixNet does); `equal_params`: channels ∝ 1/k² so every group has about the same
    number of weights, rounded by largest remainder so they sum to `total`."""
    n = len(sizes)
    if method == "equal_ch":
        return (total - (n - 1) * (total // n), *[total // n] * (n - 1))
    inverse = [Fraction(1, k * k) for k in sizes]
    shares = [total * v / sum(inverse) for v in inverse]
    counts = [math.floor(share) for share in shares]
    by_remainder = sorted(range(n), key=lambda i: counts[i] - shares[i])
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return tuple(counts)


@register("mixconv", family="conv")
class MixConvSection(Section):
    """`[mixconv]`: MixConv, channels split over kernel sizes (`equal_params` or `equal_ch`), one
    'same'-padded conv per size, concatenated. `depthwise=1` splits the input channels over
    depthwise convs (filters must be a multiple of the input channels)."""

    example: ClassVar[str] = "[mixconv]\nfilters=16\nsizes=3,5,7\nstride=2\n"

    filters: int = Field(gt=0)
    sizes: IntList = Field((3, 5, 7), min_length=1, max_length=64)
    stride: int = Field(1, gt=0)
    method: Literal["equal_params", "equal_ch"] = "equal_params"
    depthwise: Flag = False

    @field_validator("sizes")
    @classmethod
    def _sizes_odd(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        for k in value:
            if k <= 0 or k % 2 == 0:
                raise ValueError(f"kernel size {k} must be odd and positive so every group keeps the same size")
        return value

    def splits(self, in_channels: int) -> tuple[int, ...]:
        return channel_split(in_channels if self.depthwise else self.filters, self.sizes, self.method)

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        c = shapes[0][0]
        if self.depthwise and self.filters % c:
            raise SpecError(f"depthwise=1 needs filters={self.filters} to be a multiple of the input channels {c}")
        splits = self.splits(c)
        if 0 in splits:
            split = ", ".join(f"{n}×{k}×{k}" for n, k in zip(splits, self.sizes))
            counted = "input channels" if self.depthwise else "filters"
            raise SpecError(f"{self.method} splits the {counted} as {split}: a kernel size gets no channel", "sizes")
        return same_output(shapes[0], self.filters, self.stride)

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(
            m.MixConv,
            dict(
                in_channels=shapes[0][0],
                filters=self.filters,
                sizes=self.sizes,
                splits=self.splits(shapes[0][0]),
                stride=self.stride,
                depthwise=self.depthwise,
            ),
        )


@register("odconv", family="conv")
class ODConvSection(ConvVariant):
    """`[odconv]`: omni-dimensional dynamic convolution, `kernel_num` kernels mixed per sample by
    spatial, input-channel, output-channel and kernel attentions (hidden width in·reduction, ≥ 16)."""

    example: ClassVar[str] = "[odconv]\nfilters=8\nsize=3\npad=1\nbatch_normalize=1\nactivation=leaky\n"

    kernel_num: int = Field(4, gt=0, le=64)  # each is a kernel tensor: bounded so a build cannot hang
    reduction: float = Field(0.0625, gt=0, le=1)

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        kwargs = self.conv_kwargs(shapes)
        return LayerCall(dynamic.ODConv, dict(kwargs, kernel_num=self.kernel_num, reduction=self.reduction))

    def bflops(self, shapes: list[Shape], output: Shape) -> float:
        c = shapes[0][0]
        hidden = max(int(c * self.reduction), 16)
        attention = c * hidden + hidden * (c + self.filters + self.size**2 + self.kernel_num)
        kernel_mix = self.kernel_num * self.filters * c // self.geometry.groups * self.size**2
        return 2 * (self.conv_macs(shapes) + attention + kernel_mix) / 1e9


@register("refconv", family="conv")
class RefConvSection(ConvVariant):
    """`[refconv]`: RefConv, a frozen base kernel refocused by a learnable zero-initialised
    transformation; equals a plain `[convolutional]` after `fuse()`."""

    example: ClassVar[str] = "[refconv]\nfilters=8\nsize=3\npad=1\nbatch_normalize=1\nactivation=leaky\n"

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(reparam.RefConv, self.conv_kwargs(shapes))

    def bflops(self, shapes: list[Shape], output: Shape) -> float:
        return 2 * self.conv_macs(shapes) / 1e9
