"""Darknet's recurrent sections `[rnn]`, `[crnn]`, `[lstm]`, `[gru]`, `[conv_lstm]`, `[history]`, with
parser.c's keys and defaults.

They run as darknet's inference does (one time step per call, state carried from call to call in
eval mode); `[net] time_steps` is a training setting, accepted and kept. See `netcfg.modules.recurrent`
for the batch layout, the state, `reset_state` and `set_time_steps`.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from ..modules import conv_lstm as cm
from ..modules import recurrent as m
from ..registry import register
from ..section import Context, LayerCall, Section, SpecError
from ..values import Activation, Flag, Shape


def _flat(shape: Shape) -> int:
    c, h, w = shape
    return c * h * w


@register("rnn", family="darknet")
class RNNSection(Section):
    """`[rnn]`: a vanilla RNN of three `[connected]` layers (input, self, output) on the flattened
    input; output `output`×1×1. `logistic=1|2` makes the self layer logistic or loggy."""

    example: ClassVar[str] = "[rnn]\noutput=6\nhidden=5\nactivation=leaky\nbatch_normalize=1\n"

    output: int = Field(1, gt=0)
    hidden: int = Field(1, gt=0)
    activation: Activation = "logistic"
    batch_normalize: Flag = False
    logistic: int = Field(0, ge=0, le=2)
    shortcut: Flag = False

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        return self.output, 1, 1

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        self_activation = {1: "logistic", 2: "loggy"}.get(self.logistic, self.activation)
        return LayerCall(
            m.RNN,
            dict(
                inputs=_flat(shapes[0]),
                hidden=self.hidden,
                outputs=self.output,
                activation_name=self.activation,
                self_activation=self_activation,
                batch_normalize=self.batch_normalize,
                shortcut=self.shortcut,
            ),
        )


class _SameSizeConvs(Section):
    """Keys of the inner `[convolutional]` layers of `[crnn]` and `[conv_lstm]`, which darknet needs to
    keep height×width (stride 1, padding size/2): their state is read back at the input's size."""

    size: int = Field(3, gt=0)
    stride: int = Field(1, gt=0)
    dilation: int = Field(1, gt=0)
    pad: Flag = False
    padding: int = Field(0, ge=0)
    output: int = Field(1, gt=0)
    groups: int = Field(1, gt=0)
    activation: Activation = "logistic"
    batch_normalize: Flag = False
    xnor: Flag = False

    def _state_channels(self) -> dict[str, int]:
        """The keys giving the channels of the states the inner convolutions read and write."""
        return {"output": self.output}

    @model_validator(mode="after")
    def _groups_divide(self):
        channels = self._state_channels()
        if not self.xnor and any(n % self.groups for n in channels.values()):
            listed = " and ".join(f"{k}={v}" for k, v in channels.items())
            raise ValueError(f"groups={self.groups} must divide {listed}")
        return self

    @property
    def effective_padding(self) -> int:
        return self.size // 2 if self.pad else self.padding

    @property
    def effective_groups(self) -> int:
        return 1 if self.xnor else self.groups

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        c, h, w = shapes[0]
        if c % self.effective_groups:
            raise SpecError(f"groups={self.groups} must divide the {c} input channels", "groups")
        p, k, s, d = self.effective_padding, self.size, self.stride, self.dilation
        out = ((h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
        if out != (h, w) or (d > 1 and 2 * p != k - 1):
            raise SpecError(
                f"size={k}, stride={s}, padding={p}, dilation={d} change the {h}×{w} height×width; "
                f"darknet's [{self.type_name}] needs convolutions that keep it (stride=1, pad=1)",
                "size",
            )
        return self.output, h, w

    def conv_keys(self) -> dict:
        """The inner DarknetConv arguments."""
        return dict(
            size=self.size,
            stride=self.stride,
            padding=self.effective_padding * self.dilation,  # pixels: darknet's im2col pads pad·dilation
            dilation=self.dilation,
            groups=self.effective_groups,
            activation_name=self.activation,
            batch_normalize=self.batch_normalize,
            xnor=self.xnor,
        )


@register("crnn", family="darknet")
class CRNNSection(_SameSizeConvs):
    """`[crnn]`: the `[rnn]` recurrence with three `[convolutional]` layers (c→hidden, hidden→hidden,
    hidden→output filters). Darknet asserts that they keep height×width (stride 1, padding size/2)."""

    example: ClassVar[str] = "[crnn]\nsize=3\npad=1\noutput=6\nhidden=4\nactivation=leaky\nbatch_normalize=1\n"

    hidden: int = Field(1, gt=0)
    shortcut: Flag = False

    def _state_channels(self) -> dict[str, int]:
        return {"hidden": self.hidden, "output": self.output}

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(
            m.CRNN,
            dict(
                in_channels=shapes[0][0],
                hidden=self.hidden,
                outputs=self.output,
                shortcut=self.shortcut,
                **self.conv_keys(),
            ),
        )

    def bflops(self, shapes: list[Shape], output: Shape) -> float | None:
        c, h, w = shapes[0]
        per_pixel = (c * self.hidden + self.hidden * self.hidden + self.hidden * self.output) // self.effective_groups
        return 2.0 * per_pixel * self.size * self.size * h * w / 1e9


@register("conv_lstm", family="darknet")
class ConvLSTMSection(_SameSizeConvs):
    """`[conv_lstm]`: a convolutional LSTM of `[convolutional]` layers that keep height×width: U on
    the input, W on the hidden state, V on the cell state with `peephole=1`; output `output`×H×W.
    `bottleneck=1` (darknet's GPU path) mixes hidden state and input in one convolution first and needs
    as many input channels as `output`; `state_constrain` clamps the cell (default 32 × time_steps)."""

    example: ClassVar[str] = "[conv_lstm]\nsize=3\npad=1\noutput=4\npeephole=1\nbatch_normalize=1\n"
    ignored_keys: ClassVar[frozenset[str]] = frozenset({"time_normalizer"})

    activation: Activation = "linear"
    peephole: Flag = False
    bottleneck: Flag = False
    shortcut: Flag = False
    lstm_activation: Activation = "tanh"
    state_constrain: int | None = Field(None, ge=0)

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        out = super().infer(shapes, ctx)
        if self.bottleneck and shapes[0][0] != self.output:
            raise SpecError(
                f"bottleneck=1 feeds the mixed state (output={self.output} channels) to convolutions built "
                f"for the {shapes[0][0]} input channels; darknet needs them equal",
                "bottleneck",
            )
        return out

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(
            cm.ConvLSTM,
            dict(
                in_channels=shapes[0][0],
                outputs=self.output,
                peephole=self.peephole,
                bottleneck=self.bottleneck,
                shortcut=self.shortcut,
                lstm_activation=self.lstm_activation,
                state_constrain=self.state_constrain,
                **self.conv_keys(),
            ),
        )

    def bflops(self, shapes: list[Shape], output: Shape) -> float | None:
        c, h, w = shapes[0]
        n = self.output
        reads = 4 * c + (2 * n if self.bottleneck else 4 * n) + (3 * n if self.peephole else 0)
        convs = reads * n // self.effective_groups * self.size * self.size * h * w
        return (2.0 * convs + (12 if self.peephole else 9) * n * h * w) / 1e9


class _Gated(Section):
    """Keys shared by `[lstm]` and `[gru]`: output size and batch norm of the inner `[connected]` layers."""

    output: int = Field(1, gt=0)
    batch_normalize: Flag = False

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        return self.output, 1, 1

    def _call(self, cls: type, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(
            cls,
            dict(
                inputs=_flat(shapes[0]),
                outputs=self.output,
                batch_normalize=self.batch_normalize,
            ),
        )


@register("lstm", family="darknet")
class LSTMSection(_Gated):
    """`[lstm]`: an LSTM of eight linear `[connected]` layers on the flattened input; output `output`×1×1."""

    example: ClassVar[str] = "[lstm]\noutput=6\nbatch_normalize=1\n"

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return self._call(m.LSTM, shapes, ctx)


@register("gru", family="darknet")
class GRUSection(_Gated):
    """`[gru]`: darknet's GRU of six linear `[connected]` layers (candidate state through the logistic,
    as darknet's CPU code); output `output`×1×1."""

    example: ClassVar[str] = "[gru]\noutput=6\n"

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return self._call(m.GRU, shapes, ctx)


@register("history", family="darknet")
class HistorySection(Section):
    """`[history]`: the last `history_size` inputs stacked along channels (C·history_size×H×W) when
    run with time_steps > 1; at time_steps=1 (darknet's inference) the input then zeros, as darknet."""

    example: ClassVar[str] = "[history]\nhistory_size=3\n"

    history_size: int = Field(4, gt=0)

    def infer(self, shapes: list[Shape], ctx: Context) -> Shape:
        c, h, w = shapes[0]
        return c * self.history_size, h, w

    def layer(self, shapes: list[Shape], ctx: Context) -> LayerCall:
        return LayerCall(m.History, dict(channels=shapes[0][0], history_size=self.history_size))
