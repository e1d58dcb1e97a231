"""Geometric transform sections: `[stn]`."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from ..modules import transform as m
from ..registry import register
from ..section import Context, LayerCall, Section
from ..values import Shape


@register("stn", family="transform")
class STNSection(Section):
    """`[stn]`: spatial transformer; a localisation net (`filters` channels, pooled to `pool`×`pool`)
    predicts an affine resampling of the input. Output shape = input shape; starts as the identity."""

    example: ClassVar[str] = "[stn]\nfilters=8\npool=2\n"

    filters: int = Field(32, gt=0)
    pool: int = Field(4, gt=0, le=1024)

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        return shapes[0]

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.SpatialTransformer, dict(in_channels=shapes[0][0], filters=self.filters, pool=self.pool))
