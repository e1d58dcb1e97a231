"""Darknet's `[conv_lstm]` (conv_lstm_layer.c): a convolutional LSTM whose hidden and cell state
are carried across calls like the other recurrent layers (see `netcfg.modules.recurrent` for the
time/batch layout, `reset_state` and `set_time_steps`).

Every gate is a sum of `[convolutional]` layers (each with the section's activation and batch norm):
U on the input x, W on the hidden state h, and with `peephole` V on the cell state c. Per step:
f = σ(Wf·h + Uf·x + Vf·c), i = σ(Wi·h + Ui·x + Vi·c), g = act(Wg·h + Ug·x), c ← f·c + i·g,
o = σ(Wo·h + Uo·x + Vo·c) on the new c, h ← o·act(c); the output is h, and c is then clamped to
±state_constrain. `act` is `lstm_activation` (tanh by default; darknet's CPU forward always uses tanh).

With `bottleneck` (darknet's GPU forward; its CPU forward has no such path) one convolution
Wf reads h and x stacked along channels, act(Wf·[h, x]) replaces x as the U layers' input, the W
terms leave the gates, and with `shortcut` the first half of act(Wf·[h, x]) is added to the output.
"""

from __future__ import annotations

import torch

from .activations import activation
from .darknet import DarknetConv
from .recurrent import Recurrent, State

#: Darknet's default state_constrain is 32 × time_steps.
CONSTRAIN_PER_STEP = 32


class ConvLSTM(Recurrent):
    """`[conv_lstm]` (forward_conv_lstm_layer): gates from U (input), W (hidden) and, with
    `peephole`, V (cell) convolutions; inner layers listed in darknet's file order."""

    def __init__(
        self,
        in_channels: int,
        outputs: int,
        size: int = 3,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        activation_name: str = "linear",
        batch_normalize: bool = False,
        xnor: bool = False,
        peephole: bool = False,
        bottleneck: bool = False,
        shortcut: bool = False,
        lstm_activation: str = "tanh",
        state_constrain: int | None = None,
        time_steps: int = 1,
    ):
        super().__init__(time_steps)
        self.outputs = outputs
        self.peephole = peephole
        self.bottleneck = bottleneck
        self.shortcut = shortcut
        self.state_constrain = state_constrain
        self.lstm_act = activation(lstm_activation)
        self.inner = self._inner_names(peephole, bottleneck)
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
        for name in self.inner:
            setattr(self, name, DarknetConv(self._in_channels(name, in_channels), outputs, **conv))

    @staticmethod
    def _inner_names(peephole: bool, bottleneck: bool) -> tuple[str, ...]:
        """darknet's load_weights order: vf, vi, vo (peephole), wf, wi, wg, wo (wf alone with
        bottleneck), uf, ui, ug, uo."""
        v = ("vf", "vi", "vo") if peephole else ()
        w = ("wf",) if bottleneck else ("wf", "wi", "wg", "wo")
        return (*v, *w, "uf", "ui", "ug", "uo")

    def _in_channels(self, name: str, in_channels: int) -> int:
        """U layers read the input; W and V read states of `outputs` channels (Wf twice that with bottleneck)."""
        if name.startswith("u"):
            return in_channels
        return 2 * self.outputs if self.bottleneck and name == "wf" else self.outputs

    def initial_state(self, n: int, like: torch.Tensor) -> State:
        zeros = like.new_zeros(n, self.outputs, *like.shape[2:])
        return zeros, zeros

    def constrain(self) -> int:
        """The clamp on the cell state: the section's `state_constrain`, else 32 × time_steps (0: none)."""
        if self.state_constrain is None:
            return CONSTRAIN_PER_STEP * self.time_steps
        return self.state_constrain

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        h, c = state
        if self.bottleneck:
            mixed = self.lstm_act(self.wf(torch.cat([h, x], dim=1)))
            u = mixed
            w = dict.fromkeys("figo", 0.0)
        else:
            u = x
            w = {g: getattr(self, "w" + g)(h) for g in "figo"}
        v = {g: getattr(self, "v" + g) for g in "fio"} if self.peephole else {}
        f = torch.sigmoid(w["f"] + self.uf(u) + (v["f"](c) if v else 0.0))
        i = torch.sigmoid(w["i"] + self.ui(u) + (v["i"](c) if v else 0.0))
        g = self.lstm_act(w["g"] + self.ug(u))
        c = f * c + i * g
        o = torch.sigmoid(w["o"] + self.uo(u) + (v["o"](c) if v else 0.0))
        h = o * self.lstm_act(c)
        out = h
        if self.shortcut and self.bottleneck:
            out = self._partial_residual(h, mixed)
        bound = self.constrain()
        if bound:
            c = c.clamp(-bound, bound)
        return out, (h, c)

    @staticmethod
    def _partial_residual(h: torch.Tensor, mixed: torch.Tensor) -> torch.Tensor:
        """darknet's bottleneck shortcut: the first half of each sample's values gain act(Wf·[h, x])'s."""
        flat_h, flat_m = h.flatten(1), mixed.flatten(1)
        half = flat_h.shape[1] // 2
        return torch.cat([flat_h[:, :half] + flat_m[:, :half], flat_h[:, half:]], dim=1).view_as(h)
