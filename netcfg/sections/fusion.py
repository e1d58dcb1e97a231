"""Multi-level fusion sections: `[asff]`, `[seb]`."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from ..modules import fusion as m
from ..registry import register
from ..section import Context, LayerCall, Section, SpecError
from ..values import Ref, Refs, Shape


def _chw(shape: Shape) -> str:
    return f"{shape[0]}×{shape[1]}×{shape[2]} (C×H×W)"


def _is_double(fine: Shape, coarse: Shape) -> bool:
    return fine[1:] == (2 * coarse[1], 2 * coarse[2])


@register("asff", family="fusion")
class ASFFSection(Section):
    """`[asff]`: adaptively spatial feature fusion of three pyramid levels, given coarsest first
    (`layers=level0,level1,level2`, each twice the height and width of the previous), output at
    `level`'s size with `filters` channels."""

    example: ClassVar[str] = (
        "[convolutional]\nfilters=4\nsize=1\n"
        "[convolutional]\nfilters=8\nsize=3\nstride=2\npad=1\n"
        "[convolutional]\nfilters=16\nsize=3\nstride=2\npad=1\n"
        "[asff]\nlayers=-1,-2,-3\nlevel=1\nfilters=12\ncompress=4\n"
    )

    layers: Refs = Field(min_length=3, max_length=3)
    level: int = Field(0, ge=0, le=2)
    filters: int = Field(gt=0)
    compress: int = Field(16, gt=0)

    def inputs(self) -> list[Ref]:
        return [Ref("layers", v) for v in self.layers]

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        for level in (1, 2):
            coarse, fine = shapes[level - 1], shapes[level]
            if not _is_double(fine, coarse):
                raise SpecError(
                    f"the level {level} input {_chw(fine)} must be twice the height and width of the "
                    f"level {level - 1} input {_chw(coarse)} (layers go coarsest first)",
                    "layers",
                )
        _, h, w = shapes[self.level]
        return self.filters, h, w

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(
            m.ASFF,
            dict(
                channels=tuple(s[0] for s in shapes),
                level=self.level,
                filters=self.filters,
                compress=self.compress,
            ),
        )


@register("seb", family="fusion")
class SEBSection(Section):
    """`[seb]`: ExFuse semantic embedding branch, `layers=high,low` where the high level has half the
    low level's height and width; output `filters` channels at the low level's size."""

    example: ClassVar[str] = (
        "[convolutional]\nfilters=4\nsize=1\n"
        "[convolutional]\nfilters=16\nsize=3\nstride=2\npad=1\n[seb]\nlayers=-1,-2\nfilters=6\n"
    )

    layers: Refs = Field(min_length=2, max_length=2)
    filters: int = Field(gt=0)

    def inputs(self) -> list[Ref]:
        return [Ref("layers", v) for v in self.layers]

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        high, low = shapes
        if not _is_double(low, high):
            raise SpecError(
                f"the high level {_chw(high)} must have half the height and width of the low level "
                f"{_chw(low)} (layers=high,low)",
                "layers",
            )
        return self.filters, low[1], low[2]

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        high, low = shapes
        return LayerCall(m.SemanticEmbedding, dict(high_channels=high[0], low_channels=low[0], filters=self.filters))
