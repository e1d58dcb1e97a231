"""Darknet's own section types, with darknet's keys and parser.c defaults.

Keys darknet reads only for training or losses are accepted (`ignored_keys`); every other key has
darknet's inference meaning. Where darknet would read memory out of bounds or give batch-dependent
results (sizes a stride does not divide, for instance), the section refuses the combination with a
message naming the values, instead of building something darknet never computed correctly.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from ..geometry import ConvGeometry, blur_geometry, darknet_conv_out_size
from ..modules import darknet as m
from ..registry import register
from ..section import Context, LayerCall, Section, SpecError
from ..values import PREVIOUS, Activation, Flag, Ref, Refs, Shape, shape_text
from .training import NetTrainingKeys


@register("net", "network", family="darknet")
class Net(NetTrainingKeys):
    """`[net]`: the input size, and the training keys `netcfg.train` reads; the other training and
    augmentation keys are accepted and kept. `inputs=N` without width and height (darknet's rnn.cfg,
    gru.cfg) is an input of N values, read as N×1×1. `letter_box=1` makes `netcfg.detect` letterbox
    images (keep the aspect ratio, pad with grey) instead of stretching them, as darknet's `detector test`."""

    ignored_keys: ClassVar[frozenset[str]] = frozenset(
        "B1 B2 adam adversarial_lr angle aspect attention augment_speed badlabels_rejection_percentage "
        "blur contrastive contrastive_color contrastive_jit_flip cutmix "
        "dynamic_minibatch ema_alpha eps equidistant_point gaussian_noise "
        "label_smooth_eps loss_scale "
        "max_chart_loss max_crop min_crop mosaic mosaic_bound "
        "num_sigmas_reject_badlabels optimized_memory "
        "seen seq_scales sequential_subdivisions "
        "time_steps track try_fix_nan unsupervised use_cuda_graph weights_reject_freq "
        "workspace_size_limit_MB random".split()
    )

    width: int = Field(gt=0)
    height: int = Field(gt=0)
    channels: int = Field(3, gt=0)
    letter_box: Flag = False
    input_values: int | None = Field(None, gt=0, alias="inputs")

    @model_validator(mode="before")
    @classmethod
    def _inputs_alone(cls, values):
        """darknet's `inputs` (h·w·c by default) alone gives the layers N input values: N×1×1 here."""
        if isinstance(values, dict) and values.get("inputs") is not None and not {"width", "height"} & set(values):
            return {"width": 1, "height": 1, "channels": values["inputs"], **values}
        return values


class ConvolutionKeys(Section):
    """The keys every convolution honours (`[convolutional]` and its variants), with darknet's
    parser.c defaults and rules: `pad=1` means padding size/2, size 1 means dilation 1, and
    padding counts in units of the dilation (darknet convolves with padding·dilation pixels)."""

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

    @property
    def strides(self) -> tuple[int, int]:
        """(stride_y, stride_x), each falling back to `stride` when unset or < 1."""
        sy = self.stride_y if self.stride_y >= 1 else self.stride
        sx = self.stride_x if self.stride_x >= 1 else self.stride
        return sy, sx

    @property
    def conv_strides(self) -> tuple[int, int]:
        """The strides the convolution itself runs at."""
        return self.strides

    @property
    def effective_groups(self) -> int:
        return max(self.groups, 1)

    @property
    def effective_padding(self) -> int:
        """darknet's `pad` (in units of the dilation): size/2 with `pad=1`, else `padding`."""
        return self.size // 2 if self.pad else self.padding

    @property
    def effective_dilation(self) -> int:
        return 1 if self.size == 1 else self.dilation

    @property
    def geometry(self) -> ConvGeometry:
        """The convolution as it runs: padding in pixels, padding·dilation as darknet's im2col and cuDNN."""
        d = self.effective_dilation
        pixels = self.effective_padding * d
        return ConvGeometry((self.size, self.size), self.conv_strides, (pixels, pixels), d, self.effective_groups)

    def _check_groups(self, channels: int) -> None:
        groups = self.effective_groups
        if channels % groups or self.filters % groups:
            raise SpecError(
                f"groups={groups} must divide input channels {channels} and filters={self.filters}", "groups"
            )

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        self._check_groups(shapes[0][0])
        return self.geometry.output(shapes[0], self.filters)


@register("convolutional", "conv", family="darknet")
class Convolutional(ConvolutionKeys):
    """`[convolutional]`: conv + optional batch norm + activation.

    `antialiasing=1|2` runs the convolution at stride 1 and applies the stride with a fixed blur
    (3×3 binomial or 2×2 box, depthwise). `binary=1` binarises the weights to ±mean(|w|) per
    filter; `xnor=1` also the inputs to ±1 and forces groups=1, as darknet's float XNOR path.
    `cbn=1` (cross-iteration batch norm) implies batch_normalize=1; it differs only in training.
    A dilated kernel must give darknet's output size `(n + 2·pad − size)/stride + 1` in both
    directions (it does with `pad=1` and an odd size): otherwise darknet's im2col fills another
    number of positions than its output holds, and the combination is refused.
    """

    example: ClassVar[str] = (
        "[convolutional]\nfilters=16\nsize=3\nstride=2\npad=1\nbatch_normalize=1\nactivation=leaky\n"
    )

    ignored_keys: ClassVar[frozenset[str]] = frozenset(
        "flipped dot angle grad_centr reverse stream wait_stream bin_output "
        "assisted_excitation sway rotate stretch stretch_sway coordconv".split()
    )

    cbn: Flag = False
    antialiasing: int = Field(0, ge=0, le=2)
    binary: Flag = False
    xnor: Flag = False
    share_index: int | None = None

    def shares(self) -> Ref | None:
        """darknet's share_layer: an absolute index, or relative when negative; its weights, biases and
        batch-norm tensors are this layer's too (tied), and the .weights file holds them once."""
        return None if self.share_index is None else Ref("share_index", self.share_index)

    @property
    def conv_strides(self) -> tuple[int, int]:
        """The convolution's own strides: 1 when a blur applies the stride."""
        return (1, 1) if self.antialiasing else self.strides

    @property
    def effective_groups(self) -> int:
        return 1 if self.xnor else max(self.groups, 1)

    def _conv_shape(self, shape: Shape) -> Shape:
        """Output of the convolution itself, before any anti-aliasing blur."""
        self._check_groups(shape[0])
        geometry = self.geometry
        out = geometry.output(shape, self.filters)
        (sy, sx), pad = geometry.strides, self.effective_padding
        sizes = darknet_conv_out_size(shape[1], self.size, sy, pad), darknet_conv_out_size(shape[2], self.size, sx, pad)
        if sizes != out[1:]:
            raise SpecError(
                f"dilation={geometry.dilation} with pad {self.effective_padding}: darknet sizes the output "
                f"{sizes[0]}×{sizes[1]} but the dilated kernel gives {out[1]}×{out[2]} (H×W) on {shape_text(shape)}; "
                "use pad=1 with an odd size",
                "dilation",
            )
        return out

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        out = self._conv_shape(shapes[0])
        if not self.antialiasing:
            return out
        return blur_geometry(self.antialiasing, self.strides, self.filters).output(out, self.filters)

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        geometry = self.geometry
        return LayerCall(
            m.DarknetConv,
            dict(
                in_channels=shapes[0][0],
                filters=self.filters,
                size=self.size,
                stride=self.strides,
                padding=geometry.padding[0],
                groups=geometry.groups,
                dilation=geometry.dilation,
                batch_normalize=self.batch_normalize or self.cbn,
                activation_name=self.activation,
                antialiasing=self.antialiasing,
                binary=self.binary,
                xnor=self.xnor,
            ),
        )

    def bflops(self, shapes: list[Shape], output: Shape) -> float | None:
        """Darknet's count: 2·weights·(convolution output pixels), at stride 1 under a blur, ÷32 for xnor."""
        c, h, w = self._conv_shape(shapes[0])
        kh, kw = self.geometry.kernel
        weights = shapes[0][0] // self.geometry.groups * c * kh * kw
        return 2.0 * weights * h * w / 1e9 / (32 if self.xnor else 1)


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
                raise SpecError(f"inputs differ in height×width: {shape_text(shapes[0])} and {shape_text(s)}", "layers")
        for s in shapes:
            if s[0] % self.groups:
                raise SpecError(f"groups={self.groups} does not divide input channels {s[0]}", "groups")
        return sum(s[0] // self.groups for s in shapes), h, w

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.Route, dict(groups=self.groups, group_id=self.group_id))


@register("shortcut", family="darknet")
class ShortcutSection(Section):
    """`[shortcut]`: residual sum with the `from` layers (channels added where they overlap).

    The output has the previous layer's shape; a `from` layer with fewer channels adds to the
    first ones, one with more contributes only its first ones. Height and width must match (darknet
    asserts it). `weights_type=per_feature|per_layer` learns one weight per input, `per_channel` one
    per input and channel, normalised by `weights_normalization` (`relu`/`avg_relu`, `softmax`).
    """

    example: ClassVar[str] = (
        "[convolutional]\nfilters=8\nsize=1\n[convolutional]\nfilters=8\nsize=3\npad=1\n"
        "[shortcut]\nfrom=-2\nactivation=leaky\n"
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
                    f"cannot add {shape_text(s)} to the previous layer's {shape_text(shapes[0])}: height×width differ",
                    "from",
                )
        return shapes[0]

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

    def bflops(self, shapes: list[Shape], output: Shape) -> float | None:
        c, h, w = output
        count = c * h * w * len(self.from_) / 1e9
        return 2 * count if self.weights_type != "none" else count  # shortcut_layer.c doubles it


@register("connected", "conn", family="darknet")
class ConnectedSection(Section):
    """`[connected]`: fully connected layer on the flattened input; output `output`×1×1."""

    example: ClassVar[str] = "[connected]\noutput=10\nbatch_normalize=1\nactivation=leaky\n"

    output: int = Field(1, gt=0)
    activation: Activation = "logistic"
    batch_normalize: Flag = False

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        return self.output, 1, 1

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        c, h, w = shapes[0]
        return LayerCall(
            m.Connected,
            dict(
                inputs=c * h * w,
                outputs=self.output,
                batch_normalize=self.batch_normalize,
                activation_name=self.activation,
            ),
        )

    def bflops(self, shapes: list[Shape], output: Shape) -> float | None:
        return 0.0  # darknet's table counts no BFLOPs for connected layers


class _FromOne(Section):
    """A section reading the previous layer and one `from` layer."""

    from_: Refs = Field(alias="from", min_length=1, max_length=1)
    activation: Activation = "linear"

    def inputs(self) -> list[Ref]:
        return [PREVIOUS, Ref("from", self.from_[0])]


@register("scale_channels", family="darknet")
class ScaleChannelsSection(_FromOne):
    """`[scale_channels]`: the `from` layer's output scaled per channel by the previous layer's
    C×1×1 output (or, with `scale_wh=1`, per pixel by its 1×H×W output), then `activation`."""

    example: ClassVar[str] = (
        "[convolutional]\nfilters=8\nsize=1\n[avgpool]\n[convolutional]\nfilters=8\nsize=1\n[scale_channels]\nfrom=-3\n"
    )

    scale_wh: Flag = False

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        scale, target = shapes
        if self.scale_wh:
            ok = scale[0] == 1 and scale[1:] == target[1:]
            need = f"1×{target[1]}×{target[2]}"
        else:
            ok = scale[1:] == (1, 1) and scale[0] == target[0]
            need = f"{target[0]}×1×1"
        if not ok:
            raise SpecError(
                f"the previous layer gives {shape_text(scale)}; "
                f"scaling the from layer's {shape_text(target)} needs {need}",
                "from",
            )
        return target

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.ScaleChannels, dict(activation_name=self.activation))


@register("sam", family="darknet")
class SamSection(_FromOne):
    """`[sam]`: element-wise product of the previous layer and the `from` layer, then `activation`."""

    example: ClassVar[str] = (
        "[convolutional]\nfilters=8\nsize=1\n[convolutional]\nfilters=8\nsize=1\nactivation=logistic\n[sam]\nfrom=-2\n"
    )

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        if shapes[0] != shapes[1]:
            raise SpecError(
                f"the previous layer's {shape_text(shapes[0])} and from layer's {shape_text(shapes[1])} differ", "from"
            )
        return shapes[0]

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.Sam, dict(activation_name=self.activation))
