"""Darknet's resampling sections: pools, upsample, reorg and crop, with parser.c's defaults."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from ..geometry import ConvGeometry, blur_geometry, darknet_pad_split
from ..modules import resample as m
from ..registry import register
from ..section import Context, LayerCall, Section, SpecError
from ..values import Flag, Shape, shape_text


class _Pool(Section):
    """Keys shared by `[maxpool]` and `[local_avgpool]`: darknet's padding default is size − 1."""

    ignored_keys: ClassVar[frozenset[str]] = frozenset({"maxpool_zero_nonmax"})

    stride: int = Field(1, gt=0)
    stride_x: int | None = Field(None, gt=0)
    stride_y: int | None = Field(None, gt=0)
    size: int | None = Field(None, gt=0)
    padding: int | None = Field(None, ge=0)

    @property
    def kernel(self) -> int:
        return self.size if self.size is not None else self.stride

    @property
    def strides(self) -> tuple[int, int]:
        return (self.stride_y or self.stride, self.stride_x or self.stride)

    @property
    def total_padding(self) -> int:
        return self.padding if self.padding is not None else self.kernel - 1

    @property
    def pool_strides(self) -> tuple[int, int]:
        """The strides the pool itself runs at."""
        return self.strides

    @property
    def geometry(self) -> ConvGeometry:
        """The pooling window as it runs, darknet's total padding split `padding // 2` left/top first."""
        return ConvGeometry((self.kernel, self.kernel), self.pool_strides, darknet_pad_split(self.total_padding))

    def _pool_shape(self, shape: Shape) -> Shape:
        return self.geometry.output(shape, shape[0])

    def bflops(self, shapes: list[Shape], output: Shape) -> float | None:
        c, h, w = output
        kh, kw = self.geometry.kernel
        return kh * kw * c * h * w / 1e9


@register("maxpool", "max", family="darknet")
class MaxPoolSection(_Pool):
    """`[maxpool]`: max pooling with darknet's padding (default size−1, split left/top first).

    `maxpool_depth=1` pools across channels instead: output channel g is the maximum of input
    channels g, g + out_channels, ... (size, stride and padding are then unused). `antialiasing`
    pools at stride 1 and applies the stride with darknet's fixed blur. `maxpool_zero_nonmax` is
    accepted; only darknet's GPU code reads it.
    """

    example: ClassVar[str] = "[maxpool]\nsize=3\nstride=2\n"

    maxpool_depth: Flag = False
    out_channels: int = Field(1, gt=0)
    antialiasing: int = Field(0, ge=0, le=2)

    @property
    def pool_strides(self) -> tuple[int, int]:
        """The pool's own strides: 1 when a blur applies the stride."""
        return (1, 1) if self.antialiasing else self.strides

    def _unblurred_shape(self, shape: Shape) -> Shape:
        if not self.maxpool_depth:
            return self._pool_shape(shape)
        c, h, w = shape
        if self.antialiasing:
            raise SpecError("maxpool_depth=1 with antialiasing is not supported", "antialiasing")
        if self.out_channels > c:
            raise SpecError(f"out_channels={self.out_channels} exceeds the {c} input channels", "out_channels")
        return self.out_channels, h, w

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        out = self._unblurred_shape(shapes[0])
        if not self.antialiasing:
            return out
        return blur_geometry(self.antialiasing, self.strides, out[0]).output(out, out[0])

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        if self.maxpool_depth:
            return LayerCall(m.MaxPoolDepth, dict(out_channels=self.out_channels))
        geometry = self.geometry
        return LayerCall(
            m.MaxPool,
            dict(
                size=geometry.kernel[0],
                stride=self.strides,
                padding=sum(geometry.padding),
                channels=shapes[0][0],
                antialiasing=self.antialiasing,
            ),
        )

    def bflops(self, shapes: list[Shape], output: Shape) -> float | None:
        c, h, w = self._unblurred_shape(shapes[0])
        kh, kw = self.geometry.kernel
        return kh * kw * shapes[0][0] * h * w / 1e9


@register("local_avgpool", "local_avg", family="darknet")
class LocalAvgPoolSection(_Pool):
    """`[local_avgpool]`: average pooling with darknet's padding; padded positions are not counted."""

    example: ClassVar[str] = "[local_avgpool]\nsize=3\nstride=2\n"

    ignored_keys: ClassVar[frozenset[str]] = frozenset()

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        return self._pool_shape(shapes[0])

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        geometry = self.geometry
        return LayerCall(
            m.LocalAvgPool, dict(size=geometry.kernel[0], stride=geometry.strides, padding=sum(geometry.padding))
        )


@register("avgpool", "avg", family="darknet")
class AvgPoolSection(Section):
    """`[avgpool]`: global average pooling to C×1×1."""

    example: ClassVar[str] = "[avgpool]\n"

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        return shapes[0][0], 1, 1

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.GlobalAvgPool)


@register("upsample", family="darknet")
class UpsampleSection(Section):
    """`[upsample]`: nearest-neighbour upsampling by `stride`, output multiplied by `scale`; a
    negative stride downsamples, summing each |stride|×|stride| block (times `scale`)."""

    example: ClassVar[str] = "[upsample]\nstride=2\n"

    ignored_keys: ClassVar[frozenset[str]] = frozenset({"stream", "wait_stream"})

    stride: int = 2
    scale: float = 1.0

    @field_validator("stride")
    @classmethod
    def _nonzero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("stride must not be 0 (negative strides downsample)")
        return value

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        c, h, w = shapes[0]
        if self.stride > 0:
            return c, h * self.stride, w * self.stride
        s = -self.stride
        if h % s or w % s:
            raise SpecError(
                f"stride={self.stride} downsamples by {s}, which must divide the input's height×width "
                f"({shape_text(shapes[0])}); darknet misreads the input otherwise",
                "stride",
            )
        return c, h // s, w // s

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.Upsample, dict(stride=self.stride, scale=self.scale))


class _ReorgBase(Section):
    """Keys shared by `[reorg]` and `[reorg3d]`."""

    stride: int = Field(1, gt=0)
    reverse: Flag = False

    def _check(self, shape: Shape, channel_factor: int, spatial: bool) -> None:
        c, h, w = shape
        s = self.stride
        if c % channel_factor:
            raise SpecError(
                f"stride={s} needs channels divisible by {channel_factor}; got {shape_text(shape)}", "stride"
            )
        if spatial and (h % s or w % s):
            raise SpecError(f"stride={s} must divide the input's height×width; got {shape_text(shape)}", "stride")


@register("reorg", family="darknet")
class ReorgSection(_ReorgBase):
    """`[reorg]` (darknet's reorg_old, as in YOLOv2): C×H×W → C·s²×H/s×W/s with darknet's element
    order: the input is read as a C/s²×H·s×W·s tensor and written as C×H×W before being viewed as
    the output shape. `reverse=1` applies the inverse map, giving C/s²×H·s×W·s."""

    example: ClassVar[str] = "[convolutional]\nfilters=8\nsize=1\n[reorg]\nstride=2\n"

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        c, h, w = shapes[0]
        s = self.stride
        self._check(shapes[0], s * s, spatial=not self.reverse)
        if self.reverse:
            return c // (s * s), h * s, w * s
        return c * s * s, h // s, w // s

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        out = self.infer(shapes, ctx)
        return LayerCall(m.Reorg, dict(stride=self.stride, dims=shapes[0], forward=self.reverse, out_shape=out))


@register("reorg3d", family="darknet")
class Reorg3dSection(_ReorgBase):
    """`[reorg3d]` (darknet's reorg layer): space-to-depth, output channel k at (j, i) being input
    channel k mod C at (j·s + (k div C) div s, i·s + (k div C) mod s). `reverse=1` runs darknet's
    reorg_cpu the other way on the output dimensions C/s²×H·s×W·s (needs C divisible by s⁴)."""

    example: ClassVar[str] = "[reorg3d]\nstride=2\n"

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        c, h, w = shapes[0]
        s = self.stride
        if self.reverse:
            self._check(shapes[0], s**4, spatial=False)
            return c // (s * s), h * s, w * s
        self._check(shapes[0], 1, spatial=True)
        return c * s * s, h // s, w // s

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        out = self.infer(shapes, ctx)
        return LayerCall(m.Reorg, dict(stride=self.stride, dims=out, forward=self.reverse, out_shape=out))


@register("crop", family="darknet")
class CropSection(Section):
    """`[crop]` at inference: the centred crop_height×crop_width window, mapped to 2x − 1 unless
    `noadjust=1`. The random crop, flip and colour keys only act in training."""

    example: ClassVar[str] = "[crop]\ncrop_height=24\ncrop_width=28\n"

    ignored_keys: ClassVar[frozenset[str]] = frozenset({"flip", "angle", "saturation", "exposure", "shift"})

    crop_height: int = Field(1, gt=0)
    crop_width: int = Field(1, gt=0)
    noadjust: Flag = False

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        c, h, w = shapes[0]
        if self.crop_height > h or self.crop_width > w:
            raise SpecError(
                f"crop {self.crop_height}×{self.crop_width} (height×width) is larger than the input "
                f"{shape_text(shapes[0])}",
                "crop_height" if self.crop_height > h else "crop_width",
            )
        return c, self.crop_height, self.crop_width

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.Crop, dict(crop_height=self.crop_height, crop_width=self.crop_width, noadjust=self.noadjust))
