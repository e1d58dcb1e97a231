"""The training keys of `[net]` and the detection heads, with darknet's parser.c defaults and ranges.

They have no effect at inference; `netcfg.train` reads them (optimiser, schedule, augmentation, losses).
Where darknet silently falls back (an unknown `policy` becomes `constant`, an unknown `iou_loss` plain
IoU), the keys accept only the names darknet knows, so a typo is a located error instead of another loss.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from ..section import Section
from ..values import Flag, FloatList, IntList

#: `policy=` names, as darknet's get_policy spells them.
Policy = Literal["constant", "step", "steps", "exp", "poly", "sigmoid", "sgdr", "random"]
#: `iou_loss=` / `iou_thresh_kind=` names (parse_yolo).
IouKind = Literal["mse", "iou", "giou", "diou", "ciou"]


def _off_or_a_scale(value: float) -> float:
    """0 (off), or a scale factor whose inverse darknet's float arithmetic still holds."""
    if 0 < value < 1e-3:
        raise ValueError("random is 0 (off) or a scale factor of at least 0.001")
    return value


#: A head's `random`: 0, or multi-scale training's largest factor (1 means 1.4), up to 1000.
MultiScaleKey = Annotated[float, Field(ge=0, le=1e3), AfterValidator(_off_or_a_scale)]


class NetTrainingKeys(Section):
    """`[net]`'s optimiser, schedule and augmentation keys (parse_net_options); `mixup` other than 0
    blends half the training images with others, `resize_step` rounds the sizes of multi-scale
    training (a head's `random`).

    `batch` images make one update, run as `subdivisions` mini-batches; `policy` shapes the learning
    rate after `burn_in` updates of warm-up (rate·(i/burn_in)^power).
    """

    batch: int = Field(1, gt=0)
    subdivisions: int = Field(1, gt=0)
    max_batches: int = Field(0, ge=0)
    learning_rate: float = Field(0.001, ge=0)
    learning_rate_min: float = Field(0.00001, ge=0)
    momentum: float = Field(0.9, ge=0)
    decay: float = Field(0.0001, ge=0)
    burn_in: int = Field(0, ge=0)
    power: float = 4.0
    policy: Policy = "constant"
    step: int = 1
    scale: float = 1.0
    steps: IntList = ()
    scales: FloatList = ()
    gamma: float = 1.0
    sgdr_cycle: int | None = Field(None, gt=0)
    sgdr_mult: int = Field(2, gt=0)
    hue: float = Field(0.0, ge=0, le=1)
    saturation: float = Field(1.0, gt=0)
    exposure: float = Field(1.0, gt=0)
    flip: Flag = True
    mixup: int = Field(0, ge=0)
    resize_step: int = Field(32, gt=0)

    @model_validator(mode="after")
    def _schedule_complete(self):
        if self.policy == "steps" and not (self.steps and self.scales):
            raise ValueError("policy=steps needs steps= and scales= (darknet stops without them)")
        if self.policy in ("steps", "sgdr") and self.scales and len(self.scales) < len(self.steps):
            raise ValueError(
                f"steps= lists {len(self.steps)} values but scales= only {len(self.scales)}: darknet reads one "
                "scale per step"
            )
        if self.policy == "step" and self.step <= 0:
            raise ValueError(f"policy=step divides by step={self.step}: it must be positive")
        if self.policy == "poly" and not self.max_batches:
            raise ValueError("policy=poly needs max_batches= (darknet divides by it)")
        if self.policy == "sgdr" and not (self.sgdr_cycle or self.max_batches):
            raise ValueError("policy=sgdr needs sgdr_cycle= or max_batches= (darknet loops forever on an empty cycle)")
        if self.batch < self.subdivisions:
            raise ValueError(f"batch={self.batch} is smaller than subdivisions={self.subdivisions}: no mini-batch")
        return self

    @property
    def mini_batch(self) -> int:
        """Images per forward pass: batch / subdivisions, rounded down as darknet does."""
        return self.batch // self.subdivisions


class _AnchorLossKeys(Section):
    """The loss and augmentation keys `[yolo]` and `[Gaussian_yolo]` share, read by `netcfg.train`.

    `max_delta` (none: unbounded) clips the IoU-loss deltas and the `counters_per_class` multipliers.
    """

    ignore_thresh: float = 0.5
    truth_thresh: float = 1.0
    iou_thresh: float = 1.0
    iou_loss: IouKind = "mse"
    iou_thresh_kind: IouKind = "iou"
    iou_normalizer: float = 0.75
    cls_normalizer: float = 1.0
    obj_normalizer: float = 1.0
    delta_normalizer: float = 1.0
    label_smooth_eps: float = Field(0.0, ge=0, le=1)
    max_delta: float | None = Field(None, gt=0)
    counters_per_class: IntList | None = None
    objectness_smooth: Flag = False
    jitter: float = Field(0.2, ge=0, lt=1)
    resize: float = Field(1.0, ge=1e-3, le=1e3)
    random: MultiScaleKey = 0.0
    max_boxes: int = Field(200, alias="max", gt=0)

    @model_validator(mode="after")
    def _one_counter_per_class(self):
        counters = self.counters_per_class
        if counters is not None and len(counters) != getattr(self, "classes", len(counters)):
            raise ValueError(f"counters_per_class lists {len(counters)} values for classes={self.classes}")
        return self


class YoloTrainingKeys(_AnchorLossKeys):
    """`[yolo]`'s loss and augmentation keys (parse_yolo): the shared ones and `focal_loss`."""

    focal_loss: Flag = False


class GaussianYoloTrainingKeys(_AnchorLossKeys):
    """`[Gaussian_yolo]`'s loss keys (parse_gaussian_yolo): the shared ones and `uc_normalizer`, the
    weight of the uncertainty (σ) deltas. darknet does not read `focal_loss` for this head (see
    `GaussianYoloSection`)."""

    uc_normalizer: float = 1.0


class RegionTrainingKeys(Section):
    """`[region]` (YOLOv2) loss and augmentation keys (parse_region), read by `netcfg.train`."""

    object_scale: float = 1.0
    noobject_scale: float = 1.0
    class_scale: float = 1.0
    coord_scale: float = 1.0
    mask_scale: float = 1.0
    rescore: Flag = False
    bias_match: Flag = False
    thresh: float = 0.5
    absolute: Flag = False
    classfix: int = 0
    focal_loss: Flag = False
    log: Flag = False
    sqrt: Flag = False
    jitter: float = Field(0.2, ge=0, lt=1)
    resize: float = Field(1.0, ge=1e-3, le=1e3)
    random: MultiScaleKey = 0.0
    max_boxes: int = Field(200, alias="max", gt=0)
