"""Composite sections of the classic backbones (ResNet, ResNeXt, GoogLeNet) and the ops of their necks."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ..geometry import same_output
from ..modules import backbone as m
from ..registry import register
from ..section import Context, LayerCall, Section
from ..values import PREVIOUS, IntList, Ref, Refs, Shape


@register("bottleneck", family="backbone")
class BottleneckSection(Section):
    """`[bottleneck]`: ResNet v1.5 bottleneck (stride on the 3×3); `groups`/`width_per_group` give ResNeXt."""

    example: ClassVar[str] = (
        "[bottleneck]\nfilters=16\nstride=2\n[bottleneck]\nfilters=32\ngroups=2\nwidth_per_group=32\n"
    )

    filters: int = Field(gt=0)
    stride: int = Field(1, gt=0)
    groups: int = Field(1, gt=0)
    width_per_group: int = Field(64, gt=0)
    expansion: int = Field(4, gt=0)

    @model_validator(mode="after")
    def _width_is_positive(self):
        if self.filters % self.expansion:
            raise ValueError(f"filters={self.filters} must be a multiple of expansion={self.expansion}")
        if self.width == 0:
            raise ValueError(
                f"inner width int({self.filters}/{self.expansion} · {self.width_per_group}/64) · {self.groups} is 0"
            )
        return self

    @property
    def width(self) -> int:
        """Channels of the 3×3 convolution, as torchvision computes them."""
        planes = self.filters // self.expansion
        return int(planes * (self.width_per_group / 64.0)) * self.groups

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        return same_output(shapes[0], self.filters, self.stride)

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(
            m.Bottleneck,
            dict(
                in_channels=shapes[0][0],
                out_channels=self.filters,
                width=self.width,
                stride=self.stride,
                groups=self.groups,
            ),
        )


@register("basicblock", family="backbone")
class BasicBlockSection(Section):
    """`[basicblock]`: ResNet-18/34 basic block (two 3×3 convolutions, the first with the stride)."""

    example: ClassVar[str] = "[basicblock]\nfilters=16\nstride=2\n"

    filters: int = Field(gt=0)
    stride: int = Field(1, gt=0)

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        return same_output(shapes[0], self.filters, self.stride)

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.BasicBlock, dict(in_channels=shapes[0][0], out_channels=self.filters, stride=self.stride))


@register("inception", family="backbone")
class InceptionSection(Section):
    """`[inception]`: GoogLeNet Inception v1 module (biased convolutions, ReLU, true 5×5, no BN)."""

    example: ClassVar[str] = "[inception]\nout_1x1=4\nreduce_3x3=4\nout_3x3=6\nreduce_5x5=2\nout_5x5=3\npool_proj=3\n"

    out_1x1: int = Field(gt=0)
    reduce_3x3: int = Field(gt=0)
    out_3x3: int = Field(gt=0)
    reduce_5x5: int = Field(gt=0)
    out_5x5: int = Field(gt=0)
    pool_proj: int = Field(gt=0)

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        _, h, w = shapes[0]
        return self.out_1x1 + self.out_3x3 + self.out_5x5 + self.pool_proj, h, w

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        keys = ("out_1x1", "reduce_3x3", "out_3x3", "reduce_5x5", "out_5x5", "pool_proj")
        return LayerCall(m.Inception, dict(in_channels=shapes[0][0], **{k: getattr(self, k) for k in keys}))


@register("resize", family="backbone")
class ResizeSection(Section):
    """`[resize]`: interpolate the previous layer to the height×width of the `like` layer (FPN top-down)."""

    example: ClassVar[str] = (
        "[convolutional]\nfilters=4\nsize=3\nstride=2\npad=1\nname=small\n"
        "[convolutional]\nfilters=4\nsize=3\nstride=2\npad=1\n[resize]\nlike=small\n"
    )

    like: Refs = Field(min_length=1, max_length=1)
    mode: Literal["nearest", "bilinear"] = "nearest"

    def inputs(self) -> list[Ref]:
        return [PREVIOUS, Ref("like", self.like[0])]

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        return shapes[0][0], shapes[1][1], shapes[1][2]

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.Resize, dict(mode=self.mode))


@register("adaptive_avgpool", family="backbone")
class AdaptiveAvgPoolSection(Section):
    """`[adaptive_avgpool]`: average-pool to `size` (one value, or height,width) at any input size."""

    example: ClassVar[str] = "[adaptive_avgpool]\nsize=3,2\n"

    size: IntList = Field(min_length=1, max_length=2)

    @field_validator("size")
    @classmethod
    def _positive(cls, size: tuple[int, ...]) -> tuple[int, ...]:
        if min(size) <= 0:
            raise ValueError(f"size={','.join(map(str, size))} must be positive")
        return size

    @property
    def output_size(self) -> tuple[int, int]:
        return (self.size[0], self.size[-1])

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        return (shapes[0][0], *self.output_size)

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.AdaptiveAvgPool, dict(size=self.output_size))
