"""Pyramid pooling sections: `[spp]`, `[aspp]`, `[ppm]`, `[strip]`."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from ..modules import pyramid as m
from ..registry import register
from ..section import Context, LayerCall, Section, SpecError
from ..values import Flag, IntList, Shape


def _all_positive(name: str, values: tuple[int, ...]) -> None:
    bad = [v for v in values if v <= 0]
    if bad:
        raise ValueError(f"{name} must be positive integers; got {','.join(map(str, values))}")


@register("spp", family="pyramid")
class SPPSection(Section):
    """`[spp]`: YOLOv3-SPP, equal to darknet's stride-1 `[maxpool]`s of each size and
    `[route] layers=-1,-3,-5,-6`: the pools largest first, then the input. `fast=1` chains
    smaller pools (SPPF) for the same output; it needs odd sizes."""

    example: ClassVar[str] = "[spp]\nsizes=5,9,13\nfast=1\n"

    sizes: IntList = Field((5, 9, 13), min_length=1, max_length=64)
    fast: Flag = False

    @model_validator(mode="after")
    def _sizes_valid(self):
        _all_positive("sizes", self.sizes)
        even = [s for s in self.sizes if s % 2 == 0]
        if self.fast and even:
            raise ValueError(
                f"fast=1 chains pools, which equals separate pools only for odd sizes; "
                f"sizes={','.join(map(str, self.sizes))} has even {','.join(map(str, even))}"
            )
        return self

    @property
    def output_order(self) -> tuple[int, ...]:
        """Pool sizes as concatenated: largest first, as darknet's route reads them back."""
        return tuple(sorted(self.sizes, reverse=True))

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        c, h, w = shapes[0]
        return c * (len(self.sizes) + 1), h, w

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.SPP, dict(sizes=self.output_order, fast=self.fast))


@register("aspp", family="pyramid")
class ASPPSection(Section):
    """`[aspp]`: DeepLabv3 atrous spatial pyramid pooling (DeepLabv3+ separable convs with
    `separable=1`); output `filters` channels at the input size."""

    example: ClassVar[str] = "[aspp]\nfilters=8\nrates=2,4\nseparable=1\n"

    filters: int = Field(256, gt=0)
    rates: IntList = Field((6, 12, 18), max_length=64)
    image_pooling: Flag = True
    separable: Flag = False

    @model_validator(mode="after")
    def _rates_positive(self):
        _all_positive("rates", self.rates)
        return self

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        _, h, w = shapes[0]
        return self.filters, h, w

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(
            m.ASPP,
            dict(
                in_channels=shapes[0][0],
                filters=self.filters,
                rates=self.rates,
                image_pooling=self.image_pooling,
                separable=self.separable,
            ),
        )


@register("ppm", family="pyramid")
class PPMSection(Section):
    """`[ppm]`: PSPNet pyramid pooling; the input concatenated with one `filters`-channel map per
    bin size (`filters` defaults to input channels / number of sizes)."""

    example: ClassVar[str] = "[ppm]\nsizes=1,2,3,6\n"

    sizes: IntList = Field((1, 2, 3, 6), min_length=1, max_length=64)
    filters: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _sizes_positive(self):
        _all_positive("sizes", self.sizes)
        return self

    def branch_filters(self, in_channels: int) -> int:
        if self.filters is not None:
            return self.filters
        if in_channels < len(self.sizes):
            raise SpecError(
                f"the default filters = input channels / len(sizes) = {in_channels}/{len(self.sizes)} "
                "is below 1; set filters",
                "sizes",
            )
        return in_channels // len(self.sizes)

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        c, h, w = shapes[0]
        return c + len(self.sizes) * self.branch_filters(c), h, w

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        c = shapes[0][0]
        return LayerCall(m.PPM, dict(in_channels=c, filters=self.branch_filters(c), sizes=self.sizes))


@register("strip", "strip_pooling", family="pyramid")
class StripSection(Section):
    """`[strip]`: SPNet strip pooling module, residual; output shape = input shape."""

    example: ClassVar[str] = "[strip]\npool_size=4,2\n"

    pool_size: IntList = Field((20, 12), min_length=2, max_length=2)

    @model_validator(mode="after")
    def _sizes_positive(self):
        _all_positive("pool_size", self.pool_size)
        return self

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        if shapes[0][0] < 4:
            raise SpecError(f"needs at least 4 input channels (inner width = channels/4); got {shapes[0][0]}")
        return shapes[0]

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.StripPooling, dict(in_channels=shapes[0][0], pool_size=self.pool_size))
