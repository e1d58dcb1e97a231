"""Darknet's own section types, with darknet's keys and parser.c defaults."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from ..modules import darknet as m
from ..registry import Context, LayerCall, Section, SpecError, register
from ..types import PREVIOUS, Activation, Flag, FloatList, IntList, Ref, Refs, Shape


def _hw(shape: Shape) -> str:
    return f"{shape[0]}×{shape[1]}×{shape[2]} (C×H×W)"


@register("net", "network", family="darknet")
class Net(Section):
    """`[net]`: the input size; every training and augmentation key is accepted and kept."""

    ignored_keys: ClassVar[frozenset[str]] = frozenset(
        "B1 B2 adam adversarial_lr angle aspect attention augment_speed badlabels_rejection_percentage "
        "batch blur burn_in contrastive contrastive_color contrastive_jit_flip cutmix decay "
        "dynamic_minibatch ema_alpha eps equidistant_point exposure flip gamma gaussian_noise hue inputs "
        "label_smooth_eps learning_rate learning_rate_min letter_box loss_scale max_batches "
        "max_chart_loss max_crop min_crop mixup momentum mosaic mosaic_bound "
        "num_sigmas_reject_badlabels optimized_memory policy power resize_step saturation scale "
        "scales seq_scales sequential_subdivisions sgdr_cycle sgdr_mult step steps subdivisions "
        "time_steps track try_fix_nan unsupervised use_cuda_graph weights_reject_freq "
        "workspace_size_limit_MB random".split()
    )

    width: int = Field(gt=0)
    height: int = Field(gt=0)
    channels: int = Field(3, gt=0)


@register("convolutional", "conv", family="darknet")
class Convolutional(Section):
    """`[convolutional]`: conv + optional batch norm + activation."""

    example: ClassVar[str] = (
        "[convolutional]\nfilters=16\nsize=3\nstride=2\npad=1\nbatch_normalize=1\nactivation=leaky\n"
    )

    ignored_keys: ClassVar[frozenset[str]] = frozenset(
        "flipped dot angle grad_centr reverse stream wait_stream binary xnor bin_output "
        "assisted_excitation share_index cbn sway rotate stretch stretch_sway coordconv".split()
    )

    filters: int = Field(1, gt=0)
    size: int = Field(1, gt=0)
    stride: int = Field(1, gt=0)
    stride_x: int = -1
    stride_y: int = -1
    pad: Flag = False
    padding: int = Field(0, ge=0)
    groups: int = 1
    dilation: int = Field(1, gt=0)
    batch_normalize: Flag = False
    activation: Activation = "logistic"
    antialiasing: int = Field(0, ge=0, le=2)

    @property
    def strides(self) -> tuple[int, int]:
        """(stride_y, stride_x), each falling back to `stride` when unset or < 1."""
        sy = self.stride_y if self.stride_y >= 1 else self.stride
        sx = self.stride_x if self.stride_x >= 1 else self.stride
        return sy, sx

    @property
    def effective_padding(self) -> int:
        return self.size // 2 if self.pad else self.padding

    @property
    def effective_dilation(self) -> int:
        return 1 if self.size == 1 else self.dilation

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        c, h, w = shapes[0]
        groups = max(self.groups, 1)
        if c % groups or self.filters % groups:
            raise SpecError(f"groups={groups} must divide input channels {c} and filters={self.filters}", "groups")
        sy, sx = self.strides
        p, k, d = self.effective_padding, self.size, self.effective_dilation
        out_h, out_w = (h + 2 * p - k) // sy + 1, (w + 2 * p - k) // sx + 1
        if d > 1 and 2 * p != k - 1:
            torch_h = (h + 2 * p * d - d * (k - 1) - 1) // sy + 1
            if torch_h != out_h:
                raise SpecError(f"dilation={d} needs pad=1 (padding=size/2) to keep darknet's output size", "dilation")
        return self.filters, out_h, out_w

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(
            m.DarknetConv,
            dict(
                in_channels=shapes[0][0],
                filters=self.filters,
                size=self.size,
                stride=self.strides,
                padding=self.effective_padding,
                groups=max(self.groups, 1),
                dilation=self.effective_dilation,
                batch_normalize=self.batch_normalize,
                activation_name=self.activation,
            ),
        )


@register("route", family="darknet")
class RouteSection(Section):
    """`[route]`: concatenate layers (each sliced to channel group `group_id` of `groups`)."""

    example: ClassVar[str] = (
        "[convolutional]\nfilters=4\nsize=1\n[convolutional]\nfilters=6\nsize=1\n[route]\nlayers=-1,-2\n"
    )

    ignored_keys: ClassVar[frozenset[str]] = frozenset({"stream", "wait_stream"})

    layers: Refs = Field(min_length=1)
    groups: int = Field(1, gt=0)
    group_id: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _group_in_range(self):
        if self.group_id >= self.groups:
            raise ValueError(f"group_id={self.group_id} must be below groups={self.groups}")
        return self

    def inputs(self) -> list[Ref]:
        return [Ref("layers", v) for v in self.layers]

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        _, h, w = shapes[0]
        for s in shapes[1:]:
            if s[1:] != (h, w):
                raise SpecError(f"inputs differ in height×width: {_hw(shapes[0])} and {_hw(s)}", "layers")
        for s in shapes:
            if s[0] % self.groups:
                raise SpecError(f"groups={self.groups} does not divide input channels {s[0]}", "groups")
        return sum(s[0] // self.groups for s in shapes), h, w

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.Route, dict(groups=self.groups, group_id=self.group_id))


@register("shortcut", family="darknet")
class ShortcutSection(Section):
    """`[shortcut]`: residual sum with the `from` layers (channels added where they overlap)."""

    example: ClassVar[str] = (
        "[convolutional]\nfilters=8\nsize=1\n[convolutional]\nfilters=8\nsize=3\npad=1\n[shortcut]\nfrom=-2\nactivation=leaky\n"
    )

    ignored_keys: ClassVar[frozenset[str]] = frozenset({"stream", "wait_stream"})

    from_: Refs = Field(alias="from", min_length=1)
    activation: Activation = "linear"
    weights_type: Literal["none", "per_feature", "per_layer", "per_channel"] = "none"
    weights_normalization: Literal["none", "relu", "avg_relu", "softmax"] = "none"

    def inputs(self) -> list[Ref]:
        return [PREVIOUS, *(Ref("from", v) for v in self.from_)]

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        for s in shapes[1:]:
            if s[1:] != shapes[0][1:]:
                raise SpecError(
                    f"cannot add {_hw(s)} to the previous layer's {_hw(shapes[0])}: height×width differ", "from"
                )
        return shapes[0]

    def bflops(self, shapes: list[Shape], output: Shape) -> float:
        """Darknet counts one addition per output value and input, doubled with weights."""
        count = output[0] * output[1] * output[2] * len(self.from_) / 1e9
        return 2 * count if self.weights_type != "none" else count

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        kind = {"per_layer": "per_feature"}.get(self.weights_type, self.weights_type)
        norm = {"avg_relu": "relu"}.get(self.weights_normalization, self.weights_normalization)
        return LayerCall(
            m.Shortcut,
            dict(
                channels=tuple(s[0] for s in shapes),
                weights_type=kind,
                weights_normalization=norm if kind != "none" else "none",
                activation_name=self.activation,
            ),
        )


@register("maxpool", "max", family="darknet")
class MaxPoolSection(Section):
    """`[maxpool]`: max pooling with darknet's padding (default size−1, split left/top first)."""

    example: ClassVar[str] = "[maxpool]\nsize=3\nstride=2\n"

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

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        c, h, w = shapes[0]
        sy, sx = self.strides
        k, p = self.kernel, self.total_padding
        return c, (h + p - k) // sy + 1, (w + p - k) // sx + 1

    def bflops(self, shapes: list[Shape], output: Shape) -> float:
        """Darknet counts size² comparisons per output value."""
        return self.kernel**2 * shapes[0][0] * output[1] * output[2] / 1e9

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.MaxPool, dict(size=self.kernel, stride=self.strides, padding=self.total_padding))


@register("upsample", family="darknet")
class UpsampleSection(Section):
    """`[upsample]`: nearest-neighbour upsampling by `stride`, output multiplied by `scale`."""

    example: ClassVar[str] = "[upsample]\nstride=2\n"

    ignored_keys: ClassVar[frozenset[str]] = frozenset({"stream", "wait_stream"})

    stride: int = 2
    scale: float = 1.0

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        c, h, w = shapes[0]
        return c, h * self.stride, w * self.stride

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.Upsample, dict(stride=self.stride, scale=self.scale))


YOLO_TRAINING_KEYS = frozenset(
    "max show_details max_delta counters_per_class label_smooth_eps objectness_smooth iou_normalizer "
    "obj_normalizer cls_normalizer delta_normalizer iou_loss iou_thresh_kind beta_nms nms_kind jitter "
    "resize focal_loss ignore_thresh truth_thresh iou_thresh random track_history_size sim_thresh "
    "dets_for_track dets_for_show track_ciou_norm embedding_layer map".split()
)


@register("yolo", family="darknet")
class YoloSection(Section):
    """`[yolo]`: decodes the previous layer's predictions for the anchors picked by `mask`."""

    example: ClassVar[str] = (
        "[convolutional]\nfilters=21\nsize=1\nactivation=linear\n"
        "[yolo]\nmask=0,1,2\nanchors=4,5, 8,9, 12,10, 20,20\nnum=4\nclasses=2\n"
    )

    ignored_keys: ClassVar[frozenset[str]] = YOLO_TRAINING_KEYS
    is_output: ClassVar[bool] = True

    classes: int = Field(20, ge=0)
    num: int = Field(1, gt=0)
    mask: IntList | None = None
    anchors: FloatList = ()
    scale_x_y: float = 1.0
    new_coords: Flag = False

    @model_validator(mode="after")
    def _anchors_fit(self):
        if self.anchors and len(self.anchors) < 2 * self.num:
            raise ValueError(f"anchors has {len(self.anchors)} numbers; num={self.num} needs {2 * self.num}")
        for i in self.used_mask:
            if not 0 <= i < self.num:
                raise ValueError(f"mask index {i} is outside the num={self.num} anchors")
        return self

    @property
    def used_mask(self) -> tuple[int, ...]:
        return self.mask if self.mask is not None else tuple(range(self.num))

    def selected_anchors(self) -> tuple[tuple[float, float], ...]:
        anchors = self.anchors or (0.5,) * (2 * self.num)
        return tuple((anchors[2 * i], anchors[2 * i + 1]) for i in self.used_mask)

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        c, h, w = shapes[0]
        need = len(self.used_mask) * (self.classes + 5)
        if c != need:
            raise SpecError(
                f"the previous layer has {c} filters; len(mask)·(classes+5) = "
                f"{len(self.used_mask)}·({self.classes}+5) = {need}",
                "classes",
            )
        return shapes[0]

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(
            m.Yolo,
            dict(
                anchors=self.selected_anchors(),
                classes=self.classes,
                net_size=(ctx.net.height, ctx.net.width),
                scale_x_y=self.scale_x_y,
                new_coords=self.new_coords,
            ),
        )
