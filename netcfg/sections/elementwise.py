"""Darknet's per-value sections: dropout, softmax, normalisation, activation, pass-throughs and [cost]."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from ..modules import elementwise as m
from ..registry import register
from ..section import Context, LayerCall, Section, SpecError
from ..values import Activation, Shape, shape_text


@register("dropout", family="darknet")
class DropoutSection(Section):
    """`[dropout]`: identity at inference; plain dropout in training (dropblock keys accepted)."""

    example: ClassVar[str] = "[dropout]\nprobability=0.5\n"

    ignored_keys: ClassVar[frozenset[str]] = frozenset({"dropblock", "dropblock_size_rel", "dropblock_size_abs"})

    probability: float = Field(0.2, ge=0, le=1)

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.Dropout, dict(probability=self.probability))


@register("softmax", "soft", family="darknet")
class SoftmaxSection(Section):
    """`[softmax]`: softmax(x / temperature) over `groups` equal slices of the flattened input.

    `spatial` (a GPU-only variant darknet's CPU path ignores) and `noloss` are accepted; `tree`
    (hierarchical softmax from a darknet tree file) is not supported.
    """

    example: ClassVar[str] = "[softmax]\ngroups=2\ntemperature=0.5\n"

    ignored_keys: ClassVar[frozenset[str]] = frozenset({"spatial", "noloss"})

    groups: int = Field(1, gt=0)
    temperature: float = Field(1.0, gt=0)
    tree: str | None = None

    @field_validator("tree")
    @classmethod
    def _no_tree(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError("tree= (hierarchical softmax from a darknet tree file) is not supported")
        return value

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        c, h, w = shapes[0]
        if (c * h * w) % self.groups:
            raise SpecError(
                f"groups={self.groups} must divide the {c * h * w} values in {shape_text(shapes[0])}", "groups"
            )
        return shapes[0]

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.Softmax, dict(groups=self.groups, temperature=self.temperature))


@register("lrn", "normalization", family="darknet")
class LRNSection(Section):
    """`[lrn]`: darknet's local response normalisation across channels (see `modules.elementwise.LRN`)."""

    example: ClassVar[str] = "[lrn]\nsize=5\nalpha=0.0001\nbeta=0.75\nkappa=2\n"

    alpha: float = 0.0001
    beta: float = 0.75
    kappa: float = 1.0
    size: int = Field(5, gt=0)

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        if self.size // 2 >= shapes[0][0]:
            raise SpecError(
                f"size={self.size} needs more than size/2 = {self.size // 2} channels; got {shape_text(shapes[0])}",
                "size",
            )
        return shapes[0]

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.LRN, dict(size=self.size, alpha=self.alpha, beta=self.beta, kappa=self.kappa))


@register("batchnorm", family="darknet")
class BatchNormSection(Section):
    """`[batchnorm]`: batch normalisation (eps 1e-5) of the previous layer."""

    example: ClassVar[str] = "[batchnorm]\n"

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.DarknetBatchNorm, dict(channels=shapes[0][0]))


@register("activation", family="darknet")
class ActivationSection(Section):
    """`[activation]`: applies `activation` to the previous layer."""

    example: ClassVar[str] = "[activation]\nactivation=mish\n"

    activation: Activation = "linear"

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.Activation, dict(activation_name=self.activation))


@register("empty", "silence", family="darknet")
class EmptySection(Section):
    """`[empty]`/`[silence]`: passes the previous layer through."""

    example: ClassVar[str] = "[empty]\n"

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.Empty)


@register("cost", family="darknet")
class CostSection(Section):
    """`[cost]`: a training loss. At inference it passes its input through and is never the
    network output: darknet's get_network_output skips cost layers the same way."""

    ignored_keys: ClassVar[frozenset[str]] = frozenset({"type", "scale", "ratio", "noobject_scale", "thresh"})
    example: ClassVar[str] = "[avgpool]\n[softmax]\n[cost]\ntype=sse\n"
    is_loss: ClassVar[bool] = True

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.Empty)
