"""Darknet's recurrent layers `[rnn]`, `[crnn]`, `[lstm]`, `[gru]` and `[history]`, with state carried across calls.
(`[conv_lstm]`, built on the same `Recurrent` base, is in `netcfg.modules.conv_lstm`.)

Time and batch: darknet runs a recurrent layer on a batch of `time_steps × batch` samples, sample
`t·batch + b` being step t of sequence b (make_*_layer divides the network batch by `time_steps`).
At inference darknet builds every network with time_steps=1 (demo.c, detector.c and rnn.c call
parse_network_cfg_custom(cfg, 1, 1)); the cfg's `[net] time_steps` only shapes training batches.
netcfg does the same: by default every call is one step of B independent sequences, B the input's
batch. `set_time_steps(network, T)` (or a module's `time_steps`) reads a batch of B = T·N samples in
darknet's layout instead: N sequences advance T steps in one call, and the output keeps that layout.

State: in eval mode each call starts from the state the previous call ended with (zeros at first,
after `reset_state()`, or when the number of sequences N changes), as darknet keeps `l.state`
between forward passes. In training mode every call starts from zeros and leaves the carried state
at zeros, as darknet's training forward of `[rnn]`/`[crnn]` zeroes it. `reset_state(network)` resets
every recurrent layer of a network (call it between independent videos or texts).

Weights: each layer lists its inner `[connected]`/`[convolutional]` layers' tensors in darknet's
load_weights order (each inner layer: bias, then its batch-norm and weight tensors as that layer type).
"""

from __future__ import annotations

import torch
from torch import nn

from .darknet import Connected, DarknetConv

State = tuple[torch.Tensor, ...]


class Recurrent(nn.Module):
    """The time/batch layout and state handling shared by the recurrent layers; subclasses define
    `initial_state(n, like)`, `step(x, state)` and `inner` (their inner layers in file order)."""

    inner: tuple[str, ...] = ()

    def __init__(self, time_steps: int = 1):
        super().__init__()
        self.time_steps = time_steps
        self.state: State | None = None

    def reset_state(self) -> None:
        """Forget the carried state: the next call starts from zeros."""
        self.state = None

    def initial_state(self, n: int, like: torch.Tensor) -> State:
        raise NotImplementedError

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        raise NotImplementedError

    def _start(self, n: int, like: torch.Tensor) -> State:
        """The carried state in eval mode when it fits N sequences, else zeros."""
        zeros = self.initial_state(n, like)
        carried = self.state
        if self.training or carried is None or [s.shape for s in carried] != [z.shape for z in zeros]:
            return zeros
        return tuple(s.to(like) for s in carried)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = self.time_steps
        if x.shape[0] % steps:
            raise ValueError(
                f"a batch of {x.shape[0]} is not a whole number of time_steps={steps} steps; darknet reads "
                "the batch as time_steps × sequences"
            )
        sequences = x.reshape(steps, x.shape[0] // steps, *x.shape[1:])
        state = self._start(sequences.shape[1], x)
        outs = []
        for t in range(steps):
            out, state = self.step(sequences[t], state)
            outs.append(out)
        self.state = None if self.training else tuple(s.detach() for s in state)
        return torch.cat(outs)

    def darknet_tensors(self) -> list[torch.Tensor]:
        return [t for name in self.inner for t in getattr(self, name).darknet_tensors()]


class RNN(Recurrent):
    """`[rnn]` (forward_rnn_layer): state ← (state if shortcut) + input_layer(x) + self_layer(state);
    output = output_layer(state). Three `[connected]` layers; the self layer's activation is
    logistic (`logistic=1`), loggy (`logistic=2`) or `activation`."""

    inner = ("input_layer", "self_layer", "output_layer")

    def __init__(
        self,
        inputs: int,
        hidden: int,
        outputs: int,
        activation_name: str = "logistic",
        self_activation: str = "logistic",
        batch_normalize: bool = False,
        shortcut: bool = False,
        time_steps: int = 1,
    ):
        super().__init__(time_steps)
        self.input_layer = Connected(inputs, hidden, batch_normalize, activation_name)
        self.self_layer = Connected(hidden, hidden, batch_normalize, self_activation)
        self.output_layer = Connected(hidden, outputs, batch_normalize, activation_name)
        self.hidden = hidden
        self.shortcut = shortcut

    def initial_state(self, n: int, like: torch.Tensor) -> State:
        return (like.new_zeros(n, self.hidden, 1, 1),)

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        (old,) = state
        new = self.input_layer(x) + self.self_layer(old)
        if self.shortcut:
            new = new + old
        return self.output_layer(new), (new,)


class CRNN(Recurrent):
    """`[crnn]` (forward_crnn_layer): the `[rnn]` recurrence with three `[convolutional]` layers
    (input c→hidden, self hidden→hidden, output hidden→output filters) that keep height×width."""

    inner = ("input_layer", "self_layer", "output_layer")

    def __init__(
        self,
        in_channels: int,
        hidden: int,
        outputs: int,
        size: int = 3,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        activation_name: str = "logistic",
        batch_normalize: bool = False,
        xnor: bool = False,
        shortcut: bool = False,
        time_steps: int = 1,
    ):
        super().__init__(time_steps)
        conv = dict(
            size=size,
            stride=(stride, stride),
            padding=padding,
            groups=groups,
            dilation=dilation,
            batch_normalize=batch_normalize,
            activation_name=activation_name,
            xnor=xnor,
        )
        self.input_layer = DarknetConv(in_channels, hidden, **conv)
        self.self_layer = DarknetConv(hidden, hidden, **conv)
        self.output_layer = DarknetConv(hidden, outputs, **conv)
        self.hidden = hidden
        self.shortcut = shortcut

    def initial_state(self, n: int, like: torch.Tensor) -> State:
        return (like.new_zeros(n, self.hidden, *like.shape[2:]),)

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        (old,) = state
        new = self.input_layer(x) + self.self_layer(old)
        if self.shortcut:
            new = new + old
        return self.output_layer(new), (new,)


def _connected(inputs: int, outputs: int, batch_normalize: bool) -> Connected:
    return Connected(inputs, outputs, batch_normalize, "linear")


class LSTM(Recurrent):
    """`[lstm]` (forward_lstm_layer): gates f, i, o = σ(W·h + U·x), g = tanh(W·h + U·x);
    c ← f·c + i·g; h ← o·tanh(c); the output is h. Eight linear `[connected]` layers, W on h
    (wf, wi, wg, wo) then U on x (uf, ui, ug, uo), which is also their file order."""

    inner = ("wf", "wi", "wg", "wo", "uf", "ui", "ug", "uo")

    def __init__(self, inputs: int, outputs: int, batch_normalize: bool = False, time_steps: int = 1):
        super().__init__(time_steps)
        for name in self.inner:
            size = outputs if name.startswith("w") else inputs
            setattr(self, name, _connected(size, outputs, batch_normalize))
        self.outputs = outputs

    def initial_state(self, n: int, like: torch.Tensor) -> State:
        zeros = like.new_zeros(n, self.outputs, 1, 1)
        return zeros, zeros

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        h, c = state
        f = torch.sigmoid(self.wf(h) + self.uf(x))
        i = torch.sigmoid(self.wi(h) + self.ui(x))
        g = torch.tanh(self.wg(h) + self.ug(x))
        o = torch.sigmoid(self.wo(h) + self.uo(x))
        c = f * c + i * g
        h = o * torch.tanh(c)
        return h, (h, c)


class GRU(Recurrent):
    """`[gru]` (forward_gru_layer): z, r = σ(input(x) + state(s)); h = σ(input_h(x) + state_h(r·s))
    (darknet's CPU path uses the logistic, not tanh, here); output and new state z·s + (1 − z)·h.
    Six linear `[connected]` layers in file order input_z, input_r, input_h, state_z, state_r, state_h."""

    inner = ("input_z_layer", "input_r_layer", "input_h_layer", "state_z_layer", "state_r_layer", "state_h_layer")

    def __init__(self, inputs: int, outputs: int, batch_normalize: bool = False, time_steps: int = 1):
        super().__init__(time_steps)
        for name in self.inner:
            size = inputs if name.startswith("input") else outputs
            setattr(self, name, _connected(size, outputs, batch_normalize))
        self.outputs = outputs

    def initial_state(self, n: int, like: torch.Tensor) -> State:
        return (like.new_zeros(n, self.outputs, 1, 1),)

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        (s,) = state
        z = torch.sigmoid(self.input_z_layer(x) + self.state_z_layer(s))
        r = torch.sigmoid(self.input_r_layer(x) + self.state_r_layer(s))
        h = torch.sigmoid(self.input_h_layer(x) + self.state_h_layer(r * s))
        out = z * s + (1 - z) * h
        return out, (out,)


class History(Recurrent):
    """`[history]` (forward_history_layer): with time_steps > 1 the output stacks the last
    `history_size` inputs along channels, newest first (channels [0, c) the current input, then the
    previous output's first (history_size − 1)·c channels). With time_steps=1, darknet's inference
    setting, darknet copies only the input: channels past c stay zero and no history is kept."""

    def __init__(self, channels: int, history_size: int = 4, time_steps: int = 1):
        super().__init__(time_steps)
        self.channels = channels
        self.history_size = history_size

    def initial_state(self, n: int, like: torch.Tensor) -> State:
        return (like.new_zeros(n, self.channels * self.history_size, *like.shape[2:]),)

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        (previous,) = state
        out = torch.cat([x, previous[:, : self.channels * (self.history_size - 1)]], dim=1)
        return out, (out,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.time_steps == 1:
            return torch.cat([x, x.new_zeros(x.shape[0], self.channels * (self.history_size - 1), *x.shape[2:])], dim=1)
        return super().forward(x)


def reset_state(network: nn.Module) -> int:
    """Reset the carried state of every recurrent layer in `network`; returns how many were reset."""
    layers = [m for m in network.modules() if isinstance(m, Recurrent)]
    for layer in layers:
        layer.reset_state()
    return len(layers)


def set_time_steps(network: nn.Module, steps: int) -> int:
    """Make every recurrent layer of `network` read a batch as `steps` × sequences (darknet's training
    layout); `steps=1`, the default, is darknet's inference. Returns how many layers were set."""
    if steps < 1:
        raise ValueError(f"time_steps must be at least 1, not {steps}")
    layers = [m for m in network.modules() if isinstance(m, Recurrent)]
    for layer in layers:
        layer.time_steps = steps
    return len(layers)
