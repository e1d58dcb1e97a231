"""Darknet's older and auxiliary section types: `[local]`, `[detection]` (YOLOv1), `[implicit]` and
`[contrastive]`, with darknet's keys and parser.c defaults."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from ..modules import legacy as m
from ..modules.elementwise import Empty
from ..registry import register
from ..section import Context, LayerCall, Section, SpecError
from ..values import Activation, Flag, Shape


@register("local", family="darknet")
class LocalSection(Section):
    """`[local]`: locally connected layer, a convolution with unshared weights at every output position.

    Darknet sizes the output as (h − 1)/stride + 1 when `pad` is set and (h − size)/stride + 1
    otherwise, but im2col pads by the value of `pad` itself; the two agree only for some sizes
    (size=3 with pad=1, or pad=0), and any other combination is refused (darknet misreads memory).
    """

    example: ClassVar[str] = "[local]\nfilters=4\nsize=3\nstride=2\npad=1\nactivation=leaky\n"

    filters: int = Field(1, gt=0)
    size: int = Field(1, gt=0)
    stride: int = Field(1, gt=0)
    pad: int = Field(0, ge=0)
    activation: Activation = "logistic"

    def _out(self, n: int) -> int:
        """Darknet's local_out_height/width, checked against the size im2col fills."""
        declared = (n - (1 if self.pad else self.size)) // self.stride + 1
        filled = (n + 2 * self.pad - self.size) // self.stride + 1
        if declared != filled:
            raise SpecError(
                f"size={self.size}, pad={self.pad}: darknet sizes the output {declared} but im2col fills {filled}; "
                "use pad=0, or pad=1 with size=3",
                "pad",
            )
        return declared

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        _, h, w = shapes[0]
        return self.filters, self._out(h), self._out(w)

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        _, out_h, out_w = self.infer(shapes, ctx)
        return LayerCall(
            m.LocallyConnected,
            dict(
                in_channels=shapes[0][0],
                filters=self.filters,
                size=self.size,
                stride=self.stride,
                padding=self.pad,
                out_size=(out_h, out_w),
                activation_name=self.activation,
            ),
        )

    def bflops(self, shapes: list[Shape], output: Shape) -> float | None:
        c, h, w = output
        return 2.0 * c * h * w * shapes[0][0] * self.size * self.size / 1e9


@register("detection", family="darknet")
class DetectionSection(Section):
    """`[detection]` (YOLOv1): side×side cells, each with `classes` scores, `num` objectness values and
    `num` boxes of `coords` values. The output is forward_detection_layer's at inference: the input
    (class scores softmaxed per cell when `softmax=1`), same shape; `decode` gives its boxes (`sqrt`
    squares w and h there); `rescore` and the loss keys only matter in training."""

    example: ClassVar[str] = (
        "[connected]\noutput=28\nactivation=linear\n[detection]\nclasses=2\ncoords=4\nnum=1\nside=2\nsoftmax=1\n"
    )

    is_output: ClassVar[bool] = True
    ignored_keys: ClassVar[frozenset[str]] = frozenset(
        "max coord_scale forced object_scale noobject_scale class_scale jitter resize random reorg".split()
    )

    coords: int = Field(1, ge=0, validate_default=True)  # darknet's default of 1 is refused too
    classes: int = Field(1, ge=0)
    rescore: Flag = False

    @field_validator("coords")
    @classmethod
    def _four_coords(cls, value: int) -> int:
        if value != 4:
            raise ValueError(f"coords={value}: darknet's detection boxes (get_detection_detections) have exactly 4")
        return value

    num: int = Field(1, gt=0)
    side: int = Field(7, gt=0)
    softmax: Flag = False
    sqrt: Flag = False

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        c, h, w = shapes[0]
        need = self.side * self.side * ((1 + self.coords) * self.num + self.classes)
        if c * h * w != need:
            raise SpecError(
                f"the input has {c * h * w} values; side²·((1+coords)·num + classes) = "
                f"{self.side}²·((1+{self.coords})·{self.num} + {self.classes}) = {need}",
                "side",
            )
        return shapes[0]

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(
            m.Detection, dict(side=self.side, classes=self.classes, num=self.num, softmax=self.softmax, sqrt=self.sqrt)
        )


@register("implicit", family="darknet")
class ImplicitSection(Section):
    """`[implicit]` (YOLOR implicit knowledge): a learned filters×atoms×1 tensor, one copy per image of
    the previous layer's batch; the previous layer's values are not read. Initialised with
    mean + uniform(−std, std) as darknet."""

    example: ClassVar[str] = "[implicit]\nfilters=8\nmean=1\nstd=0.02\n"

    mean: float = Field(0.0, ge=-1e38, le=1e38)  # mean ± std must stay a finite float32
    std: float = Field(0.2, ge=0, le=1e38)
    filters: int = Field(128, gt=0)
    atoms: int = Field(1, gt=0)

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        return self.filters, self.atoms, 1

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.Implicit, dict(filters=self.filters, atoms=self.atoms, mean=self.mean, std=self.std))


@register("contrastive", family="darknet")
class ContrastiveSection(Section):
    """`[contrastive]`: a training loss (supervised contrastive learning on the embeddings of the
    previous layer, paired with the `[yolo]` layer `yolo_layer`). At inference darknet's GPU forward
    copies its input and returns (its CPU forward returns without writing, leaving zeros); netcfg
    passes the input through, and like `[cost]` it is never the default network output."""

    example: ClassVar[str] = "[convolutional]\nfilters=8\nsize=1\nactivation=linear\n[contrastive]\nclasses=2\n"

    is_loss: ClassVar[bool] = True
    ignored_keys: ClassVar[frozenset[str]] = frozenset(
        "yolo_layer temperature cls_normalizer max_delta contrastive_neg_max".split()
    )

    classes: int = Field(1000, gt=0)

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(Empty)
