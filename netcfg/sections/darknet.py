"""Darknet's own section types, with darknet's keys and parser.c defaults.

Keys darknet reads only for training or losses are accepted (`ignored_keys`); every other key has
darknet's inference meaning. Where darknet would read memory out of bounds or give batch-dependent
results (sizes a stride does not divide, for instance), the section refuses the combination with a
message naming the values, instead of building something darknet never computed correctly.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ..geometry import ConvGeometry, darknet_conv_out_size, darknet_pad_split
from ..modules import darknet as m
from ..modules import heads
from ..registry import register
from ..section import Context, LayerCall, Section, SpecError
from ..values import PREVIOUS, Activation, Flag, FloatList, IntList, Ref, Refs, Shape


def _hw(shape: Shape) -> str:
    return f"{shape[0]}×{shape[1]}×{shape[2]} (C×H×W)"


def _blur_geometry(antialiasing: int, strides: tuple[int, int], channels: int) -> ConvGeometry:
    """darknet's depthwise anti-aliasing blur at `strides`: 3×3 pad 1 (`antialiasing=1`) or 2×2 pad 0."""
    size, pad = (3, 1) if antialiasing == 1 else (2, 0)
    return ConvGeometry((size, size), strides, (pad, pad), groups=channels)


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
        "scales seen seq_scales sequential_subdivisions sgdr_cycle sgdr_mult step steps subdivisions "
        "time_steps track try_fix_nan unsupervised use_cuda_graph weights_reject_freq "
        "workspace_size_limit_MB random".split()
    )

    width: int = Field(gt=0)
    height: int = Field(gt=0)
    channels: int = Field(3, gt=0)


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

    @field_validator("share_index")
    @classmethod
    def _no_sharing(cls, value: int | None) -> int | None:
        if value is not None:
            raise ValueError("share_index (weights shared with another layer) is not supported")
        return value

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
        sizes = tuple(
            darknet_conv_out_size(n, self.size, s, self.effective_padding) for n, s in zip(shape[1:], geometry.strides)
        )
        if sizes != out[1:]:
            raise SpecError(
                f"dilation={geometry.dilation} with pad {self.effective_padding}: darknet sizes the output "
                f"{sizes[0]}×{sizes[1]} but the dilated kernel gives {out[1]}×{out[2]} (H×W) on {_hw(shape)}; "
                "use pad=1 with an odd size",
                "dilation",
            )
        return out

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        out = self._conv_shape(shapes[0])
        if not self.antialiasing:
            return out
        return _blur_geometry(self.antialiasing, self.strides, self.filters).output(out, self.filters)

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
                raise SpecError(f"inputs differ in height×width: {_hw(shapes[0])} and {_hw(s)}", "layers")
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
                    f"cannot add {_hw(s)} to the previous layer's {_hw(shapes[0])}: height×width differ", "from"
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


class _Pool(Section):
    """Keys shared by `[maxpool]` and `[local_avgpool]`: darknet's padding default is size − 1."""

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

    @property
    def pool_strides(self) -> tuple[int, int]:
        """The strides the pool itself runs at."""
        return self.strides

    @property
    def geometry(self) -> ConvGeometry:
        """The pooling window as it runs, darknet's total padding split `padding // 2` left/top first."""
        return ConvGeometry((self.kernel, self.kernel), self.pool_strides, darknet_pad_split(self.total_padding))

    def _pool_shape(self, shape: Shape) -> Shape:
        return self.geometry.output(shape, shape[0])

    def bflops(self, shapes: list[Shape], output: Shape) -> float | None:
        c, h, w = output
        kh, kw = self.geometry.kernel
        return kh * kw * c * h * w / 1e9


@register("maxpool", "max", family="darknet")
class MaxPoolSection(_Pool):
    """`[maxpool]`: max pooling with darknet's padding (default size−1, split left/top first).

    `maxpool_depth=1` pools across channels instead: output channel g is the maximum of input
    channels g, g + out_channels, ... (size, stride and padding are then unused). `antialiasing`
    pools at stride 1 and applies the stride with darknet's fixed blur. `maxpool_zero_nonmax` is
    accepted; only darknet's GPU code reads it.
    """

    example: ClassVar[str] = "[maxpool]\nsize=3\nstride=2\n"

    maxpool_depth: Flag = False
    out_channels: int = Field(1, gt=0)
    antialiasing: int = Field(0, ge=0, le=2)

    @property
    def pool_strides(self) -> tuple[int, int]:
        """The pool's own strides: 1 when a blur applies the stride."""
        return (1, 1) if self.antialiasing else self.strides

    def _unblurred_shape(self, shape: Shape) -> Shape:
        if not self.maxpool_depth:
            return self._pool_shape(shape)
        c, h, w = shape
        if self.antialiasing:
            raise SpecError("maxpool_depth=1 with antialiasing is not supported", "antialiasing")
        if self.out_channels > c:
            raise SpecError(f"out_channels={self.out_channels} exceeds the {c} input channels", "out_channels")
        return self.out_channels, h, w

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        out = self._unblurred_shape(shapes[0])
        if not self.antialiasing:
            return out
        return _blur_geometry(self.antialiasing, self.strides, out[0]).output(out, out[0])

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        if self.maxpool_depth:
            return LayerCall(m.MaxPoolDepth, dict(out_channels=self.out_channels))
        geometry = self.geometry
        return LayerCall(
            m.MaxPool,
            dict(
                size=geometry.kernel[0],
                stride=self.strides,
                padding=sum(geometry.padding),
                channels=shapes[0][0],
                antialiasing=self.antialiasing,
            ),
        )

    def bflops(self, shapes: list[Shape], output: Shape) -> float | None:
        c, h, w = self._unblurred_shape(shapes[0])
        kh, kw = self.geometry.kernel
        return kh * kw * shapes[0][0] * h * w / 1e9


@register("local_avgpool", "local_avg", family="darknet")
class LocalAvgPoolSection(_Pool):
    """`[local_avgpool]`: average pooling with darknet's padding; padded positions are not counted."""

    example: ClassVar[str] = "[local_avgpool]\nsize=3\nstride=2\n"

    ignored_keys: ClassVar[frozenset[str]] = frozenset()

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        return self._pool_shape(shapes[0])

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        geometry = self.geometry
        return LayerCall(
            m.LocalAvgPool, dict(size=geometry.kernel[0], stride=geometry.strides, padding=sum(geometry.padding))
        )


@register("avgpool", "avg", family="darknet")
class AvgPoolSection(Section):
    """`[avgpool]`: global average pooling to C×1×1."""

    example: ClassVar[str] = "[avgpool]\n"

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        return shapes[0][0], 1, 1

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.GlobalAvgPool)


@register("upsample", family="darknet")
class UpsampleSection(Section):
    """`[upsample]`: nearest-neighbour upsampling by `stride`, output multiplied by `scale`; a
    negative stride downsamples, summing each |stride|×|stride| block (times `scale`)."""

    example: ClassVar[str] = "[upsample]\nstride=2\n"

    ignored_keys: ClassVar[frozenset[str]] = frozenset({"stream", "wait_stream"})

    stride: int = 2
    scale: float = 1.0

    @field_validator("stride")
    @classmethod
    def _nonzero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("stride must not be 0 (negative strides downsample)")
        return value

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        c, h, w = shapes[0]
        if self.stride > 0:
            return c, h * self.stride, w * self.stride
        s = -self.stride
        if h % s or w % s:
            raise SpecError(
                f"stride={self.stride} downsamples by {s}, which must divide the input's height×width "
                f"({_hw(shapes[0])}); darknet misreads the input otherwise",
                "stride",
            )
        return c, h // s, w // s

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.Upsample, dict(stride=self.stride, scale=self.scale))


class _ReorgBase(Section):
    """Keys shared by `[reorg]` and `[reorg3d]`."""

    stride: int = Field(1, gt=0)
    reverse: Flag = False

    def _check(self, shape: Shape, channel_factor: int, spatial: bool) -> None:
        c, h, w = shape
        s = self.stride
        if c % channel_factor:
            raise SpecError(f"stride={s} needs channels divisible by {channel_factor}; got {_hw(shape)}", "stride")
        if spatial and (h % s or w % s):
            raise SpecError(f"stride={s} must divide the input's height×width; got {_hw(shape)}", "stride")


@register("reorg", family="darknet")
class ReorgSection(_ReorgBase):
    """`[reorg]` (darknet's reorg_old, as in YOLOv2): C×H×W → C·s²×H/s×W/s with darknet's element
    order: the input is read as a C/s²×H·s×W·s tensor and written as C×H×W before being viewed as
    the output shape. `reverse=1` applies the inverse map, giving C/s²×H·s×W·s."""

    example: ClassVar[str] = "[convolutional]\nfilters=8\nsize=1\n[reorg]\nstride=2\n"

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        c, h, w = shapes[0]
        s = self.stride
        self._check(shapes[0], s * s, spatial=not self.reverse)
        if self.reverse:
            return c // (s * s), h * s, w * s
        return c * s * s, h // s, w // s

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        out = self.infer(shapes, ctx)
        return LayerCall(m.Reorg, dict(stride=self.stride, dims=shapes[0], forward=self.reverse, out_shape=out))


@register("reorg3d", family="darknet")
class Reorg3dSection(_ReorgBase):
    """`[reorg3d]` (darknet's reorg layer): space-to-depth, output channel k at (j, i) being input
    channel k mod C at (j·s + (k div C) div s, i·s + (k div C) mod s). `reverse=1` runs darknet's
    reorg_cpu the other way on the output dimensions C/s²×H·s×W·s (needs C divisible by s⁴)."""

    example: ClassVar[str] = "[reorg3d]\nstride=2\n"

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        c, h, w = shapes[0]
        s = self.stride
        if self.reverse:
            self._check(shapes[0], s**4, spatial=False)
            return c // (s * s), h * s, w * s
        self._check(shapes[0], 1, spatial=True)
        return c * s * s, h // s, w // s

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        out = self.infer(shapes, ctx)
        return LayerCall(m.Reorg, dict(stride=self.stride, dims=out, forward=self.reverse, out_shape=out))


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
            raise SpecError(f"groups={self.groups} must divide the {c * h * w} values in {_hw(shapes[0])}", "groups")
        return shapes[0]

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.Softmax, dict(groups=self.groups, temperature=self.temperature))


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
                f"the previous layer gives {_hw(scale)}; scaling the from layer's {_hw(target)} needs {need}", "from"
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
            raise SpecError(f"the previous layer's {_hw(shapes[0])} and from layer's {_hw(shapes[1])} differ", "from")
        return shapes[0]

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.Sam, dict(activation_name=self.activation))


@register("lrn", "normalization", family="darknet")
class LRNSection(Section):
    """`[lrn]`: darknet's local response normalisation across channels (see `modules.darknet.LRN`)."""

    example: ClassVar[str] = "[lrn]\nsize=5\nalpha=0.0001\nbeta=0.75\nkappa=2\n"

    alpha: float = 0.0001
    beta: float = 0.75
    kappa: float = 1.0
    size: int = Field(5, gt=0)

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        if self.size // 2 >= shapes[0][0]:
            raise SpecError(
                f"size={self.size} needs more than size/2 = {self.size // 2} channels; got {_hw(shapes[0])}", "size"
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


@register("crop", family="darknet")
class CropSection(Section):
    """`[crop]` at inference: the centred crop_height×crop_width window, mapped to 2x − 1 unless
    `noadjust=1`. The random crop, flip and colour keys only act in training."""

    example: ClassVar[str] = "[crop]\ncrop_height=24\ncrop_width=28\n"

    ignored_keys: ClassVar[frozenset[str]] = frozenset({"flip", "angle", "saturation", "exposure", "shift"})

    crop_height: int = Field(1, gt=0)
    crop_width: int = Field(1, gt=0)
    noadjust: Flag = False

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        c, h, w = shapes[0]
        if self.crop_height > h or self.crop_width > w:
            raise SpecError(
                f"crop {self.crop_height}×{self.crop_width} (height×width) is larger than the input {_hw(shapes[0])}",
                "crop_height" if self.crop_height > h else "crop_width",
            )
        return c, self.crop_height, self.crop_width

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.Crop, dict(crop_height=self.crop_height, crop_width=self.crop_width, noadjust=self.noadjust))


YOLO_TRAINING_KEYS = frozenset(
    "max show_details max_delta counters_per_class label_smooth_eps objectness_smooth iou_normalizer "
    "obj_normalizer cls_normalizer delta_normalizer iou_loss iou_thresh_kind beta_nms nms_kind jitter "
    "resize focal_loss ignore_thresh truth_thresh iou_thresh random track_history_size sim_thresh "
    "dets_for_track dets_for_show track_ciou_norm embedding_layer map".split()
)


class _Anchored(Section):
    """Keys shared by the detection heads: classes, anchors (`num` pairs) and an optional mask.

    As darknet, anchors beyond `num` pairs are ignored and missing ones default to 0.5.
    """

    is_output: ClassVar[bool] = True

    classes: int = Field(20, ge=0)
    num: int = Field(1, gt=0)
    anchors: FloatList = ()

    @property
    def used_mask(self) -> tuple[int, ...]:
        return tuple(range(self.num))

    def selected_anchors(self) -> tuple[tuple[float, float], ...]:
        anchors = (*self.anchors[: 2 * self.num], *(0.5,) * max(0, 2 * self.num - len(self.anchors)))
        return tuple((anchors[2 * i], anchors[2 * i + 1]) for i in self.used_mask)

    def _check_filters(self, shape: Shape, per_anchor: int, formula: str, key: str) -> None:
        n = len(self.used_mask)
        if shape[0] != n * per_anchor:
            raise SpecError(
                f"the previous layer has {shape[0]} filters; {formula} = {n}·{per_anchor} = {n * per_anchor}", key
            )


class _Masked(_Anchored):
    """`mask` picks which of the `num` anchors this head predicts (all when absent)."""

    mask: IntList | None = None

    @model_validator(mode="after")
    def _mask_in_range(self):
        for i in self.used_mask:
            if not 0 <= i < self.num:
                raise ValueError(f"mask index {i} is outside the num={self.num} anchors")
        return self

    @property
    def used_mask(self) -> tuple[int, ...]:
        return self.mask if self.mask is not None else tuple(range(self.num))


@register("yolo", family="darknet")
class YoloSection(_Masked):
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
class GaussianYoloSection(_Masked):
    """`[Gaussian_yolo]`: YOLOv3 with a Gaussian (mean, uncertainty) per box coordinate; each anchor
    predicts 9 + classes values. Output layout: see `modules.heads.GaussianYolo`."""

    example: ClassVar[str] = (
        "[convolutional]\nfilters=22\nsize=1\nactivation=linear\n"
        "[Gaussian_yolo]\nmask=0,1\nanchors=4,5, 8,9, 12,10\nnum=3\nclasses=2\nscale_x_y=1.1\n"
    )

    ignored_keys: ClassVar[frozenset[str]] = YOLO_TRAINING_KEYS | {"uc_normalizer"}

    scale_x_y: float = 1.0
    yolo_point: Literal["center", "left_top", "right_bottom"] = "center"

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
class RegionSection(_Anchored):
    """`[region]` (YOLOv2): num·(classes + 5) predictions per cell, activated as darknet does; anchors
    are in grid cells. Output layout: see `modules.heads.Region`.

    `tree`/`map` (YOLO9000's hierarchical softmax, which needs darknet's tree file) are accepted;
    with `tree` set the class scores are returned as raw values, for the caller to apply the tree.
    """

    example: ClassVar[str] = (
        "[convolutional]\nfilters=21\nsize=1\nactivation=linear\n"
        "[region]\nanchors=1.08,1.19, 3.42,4.41, 6.63,11.38\nclasses=2\ncoords=4\nnum=3\nsoftmax=1\n"
    )

    ignored_keys: ClassVar[frozenset[str]] = frozenset(
        "max log sqrt focal_loss jitter resize rescore thresh classfix absolute random coord_scale "
        "object_scale noobject_scale mask_scale class_scale bias_match tree map".split()
    )

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
