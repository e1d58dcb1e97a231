"""Receptive-field and context sections: `[rfb]`, `[rfbs]`, `[ssh]`."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from ..geometry import same_output
from ..modules import context as m
from ..registry import register
from ..section import Context, LayerCall, Section, SpecError
from ..values import Shape

#: Fewest input channels for which every RFB branch keeps at least one channel.
RFB_MIN_CHANNELS = 16


def _check_rfb_channels(shape: Shape, inter: str) -> None:
    if shape[0] < RFB_MIN_CHANNELS:
        raise SpecError(
            f"needs at least {RFB_MIN_CHANNELS} input channels so that every branch (inter = {inter}) "
            f"has a channel; the input is {shape[0]}×{shape[1]}×{shape[2]} (C×H×W)"
        )


@register("rfb", family="context")
class RFBSection(Section):
    """`[rfb]`: RFBNet BasicRFB (inter = in/8, dilations visual, visual+1, 2·visual+1),
    `relu(linear·scale + shortcut)` with `filters` output channels."""

    example: ClassVar[str] = "[convolutional]\nfilters=16\nsize=1\n[rfb]\nfilters=12\nstride=2\nvisual=2\n"

    filters: int = Field(gt=0)
    stride: int = Field(1, gt=0)
    scale: float = 0.1
    visual: int = Field(1, gt=0)

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        _check_rfb_channels(shapes[0], "in/8")
        return same_output(shapes[0], self.filters, self.stride)

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(
            m.RFB,
            dict(
                in_channels=shapes[0][0],
                filters=self.filters,
                stride=self.stride,
                scale=self.scale,
                visual=self.visual,
            ),
        )


@register("rfbs", "rfb_small", family="context")
class RFBSmallSection(Section):
    """`[rfbs]`: RFBNet BasicRFB_small (RFB-s: inter = in/4, four branches of 1×3/3×1 convs)."""

    example: ClassVar[str] = "[convolutional]\nfilters=16\nsize=1\n[rfbs]\nfilters=16\n"

    filters: int = Field(gt=0)
    stride: int = Field(1, gt=0)
    scale: float = 0.1

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        _check_rfb_channels(shapes[0], "in/4, quarter = in/16")
        return same_output(shapes[0], self.filters, self.stride)

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(
            m.RFBSmall,
            dict(in_channels=shapes[0][0], filters=self.filters, stride=self.stride, scale=self.scale),
        )


@register("ssh", family="context")
class SSHSection(Section):
    """`[ssh]`: SSH context module; `filters` (default: input channels, even) output channels."""

    example: ClassVar[str] = "[ssh]\nfilters=8\n"

    filters: int | None = Field(None, gt=0)

    def out_filters(self, shape: Shape) -> int:
        filters = shape[0] if self.filters is None else self.filters
        if filters % 2:
            source = "filters" if self.filters is not None else "the input channel count (default filters)"
            raise SpecError(f"{source} = {filters} must be even: two branches of filters/2", "filters")
        return filters

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        _, h, w = shapes[0]
        return self.out_filters(shapes[0]), h, w

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.SSHContext, dict(in_channels=shapes[0][0], filters=self.out_filters(shapes[0])))
