"""Darknet's detection heads: `[yolo]`, `[Gaussian_yolo]` and `[region]`, with their anchors and masks.

A head's layer output is darknet's `l.output` (its input's shape); decoding to boxes is the module's
`decode`, which `Network` applies to the output heads in eval mode.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ..modules import heads
from ..registry import register
from ..section import Context, LayerCall, Section, SpecError
from ..values import Flag, FloatList, IntList, Shape
from .training import GaussianYoloTrainingKeys, RegionTrainingKeys, YoloTrainingKeys

YOLO_TRAINING_KEYS = frozenset(
    "show_details track_history_size sim_thresh dets_for_track dets_for_show "
    "track_ciou_norm embedding_layer map".split()
)


#: More anchors than this per head are refused: real cfgs use up to 20, and each costs filters.
MAX_ANCHORS = 1024


class _Anchored(Section):
    """Keys shared by the detection heads: classes, anchors (`num` pairs) and an optional mask.

    As darknet, missing anchors default to 0.5 (with a warning). A mask index at or past `num` reads
    past darknet's anchor array; netcfg uses the pair `anchors=` lists there (with a warning) and
    refuses the index only when no pair is listed.
    """

    is_output: ClassVar[bool] = True

    classes: int = Field(20, ge=0)
    num: int = Field(1, gt=0, le=MAX_ANCHORS)
    anchors: FloatList = ()

    @property
    def used_mask(self) -> tuple[int, ...]:
        return tuple(range(self.num))

    def selected_anchors(self) -> tuple[tuple[float, float], ...]:
        anchors = (*self.anchors, *(0.5,) * max(0, 2 * self.num - len(self.anchors)))
        return tuple((anchors[2 * i], anchors[2 * i + 1]) for i in self.used_mask)

    def notes(self) -> list[tuple[str | None, str]]:
        notes: list[tuple[str | None, str]] = []
        if len(self.anchors) < 2 * self.num:
            notes.append(
                (
                    "anchors",
                    f"{len(self.anchors)} values for num={self.num} pairs: missing ones are 0.5, as in darknet",
                )
            )
        past = [i for i in self.used_mask if i >= self.num]
        if past:
            notes.append(("mask", f"mask {past} reads past the num={self.num} anchors; using the pairs anchors= lists"))
        return notes

    def _check_filters(self, shape: Shape, per_anchor: int, formula: str, key: str) -> None:
        n = len(self.used_mask)
        if shape[0] != n * per_anchor:
            raise SpecError(
                f"the previous layer has {shape[0]} filters; {formula} = {n}·{per_anchor} = {n * per_anchor}", key
            )


class _Masked(_Anchored):
    """`mask` picks which of the `num` anchors this head predicts (all when absent). `nms_kind` and
    `beta_nms` choose the non-maximum suppression `netcfg.detect` runs, as darknet's `detector test`
    reads them from the last head: `default` and `cornersnms` suppress at IoU > nms, `greedynms` at
    DIoU (exponent 0.6) > nms, `diounms` at IoU − (d²/c²)^beta_nms > nms (darknet's diounms_sort)."""

    mask: IntList | None = None
    nms_kind: Literal["default", "greedynms", "diounms", "cornersnms"] = "default"
    beta_nms: float = Field(0.6, gt=0)

    @model_validator(mode="after")
    def _mask_in_range(self):
        listed = max(self.num, len(self.anchors) // 2)
        for i in self.used_mask:
            if not 0 <= i < listed:
                raise ValueError(f"mask index {i} has no anchor: num={self.num} and anchors= lists {listed} pairs")
        return self

    @property
    def used_mask(self) -> tuple[int, ...]:
        return self.mask if self.mask is not None else tuple(range(self.num))


@register("yolo", family="darknet")
class YoloSection(YoloTrainingKeys, _Masked):
    """`[yolo]`: the previous layer's predictions for the anchors picked by `mask`, activated as darknet
    does; boxes come from the module's `decode`. Output layout: see `modules.heads.Yolo`."""

    example: ClassVar[str] = (
        "[convolutional]\nfilters=21\nsize=1\nactivation=linear\n"
        "[yolo]\nmask=0,1,2\nanchors=4,5, 8,9, 12,10, 20,20\nnum=4\nclasses=2\n"
    )

    ignored_keys: ClassVar[frozenset[str]] = YOLO_TRAINING_KEYS

    scale_x_y: float = 1.0
    new_coords: Flag = False

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        self._check_filters(shapes[0], self.classes + 5, "len(mask)·(classes+5)", "classes")
        return shapes[0]

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(
            heads.Yolo,
            dict(
                anchors=self.selected_anchors(),
                classes=self.classes,
                scale_x_y=self.scale_x_y,
                new_coords=self.new_coords,
            ),
        )


@register("Gaussian_yolo", family="darknet")
class GaussianYoloSection(GaussianYoloTrainingKeys, _Masked):
    """`[Gaussian_yolo]`: YOLOv3 with a Gaussian (mean, uncertainty) per box coordinate; each anchor
    predicts 9 + classes values. Output layout: see `modules.heads.GaussianYolo`."""

    example: ClassVar[str] = (
        "[convolutional]\nfilters=22\nsize=1\nactivation=linear\n"
        "[Gaussian_yolo]\nmask=0,1\nanchors=4,5, 8,9, 12,10\nnum=3\nclasses=2\nscale_x_y=1.1\n"
    )

    #: `[yolo]`'s focal_loss is accepted (cfgs copy it from `[yolo]`), with a note: darknet does not read it here.
    ignored_keys: ClassVar[frozenset[str]] = YOLO_TRAINING_KEYS | {"focal_loss"}

    scale_x_y: float = 1.0
    yolo_point: Literal["center", "left_top", "right_bottom"] = "center"

    def notes(self) -> list[tuple[str | None, str]]:
        notes = super().notes()
        if "focal_loss" in self.extras:
            notes.append(("focal_loss", "darknet does not read it for [Gaussian_yolo]: no effect"))
        return notes

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        self._check_filters(shapes[0], self.classes + 9, "len(mask)·(classes+9)", "classes")
        return shapes[0]

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(
            heads.GaussianYolo,
            dict(
                anchors=self.selected_anchors(),
                classes=self.classes,
                scale_x_y=self.scale_x_y,
                yolo_point=self.yolo_point,
            ),
        )


@register("region", family="darknet")
class RegionSection(RegionTrainingKeys, _Anchored):
    """`[region]` (YOLOv2): num·(classes + 5) predictions per cell, activated as darknet does; anchors
    are in grid cells. Output layout: see `modules.heads.Region`.

    `tree`/`map` (YOLO9000's hierarchical softmax, which needs darknet's tree file) are accepted;
    with `tree` set the class scores are returned as raw values, for the caller to apply the tree.
    """

    example: ClassVar[str] = (
        "[convolutional]\nfilters=21\nsize=1\nactivation=linear\n"
        "[region]\nanchors=1.08,1.19, 3.42,4.41, 6.63,11.38\nclasses=2\ncoords=4\nnum=3\nsoftmax=1\n"
    )

    ignored_keys: ClassVar[frozenset[str]] = frozenset("tree map".split())

    coords: int = 4
    softmax: Flag = False

    @field_validator("coords")
    @classmethod
    def _four_coords(cls, value: int) -> int:
        if value != 4:
            raise ValueError(f"coords={value}: darknet's region decoding reads exactly 4 box coordinates")
        return value

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        self._check_filters(shapes[0], self.classes + self.coords + 1, "num·(classes+coords+1)", "classes")
        return shapes[0]

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(
            heads.Region,
            dict(
                anchors=self.selected_anchors(),
                classes=self.classes,
                softmax=self.softmax and "tree" not in self.extras,
            ),
        )
