"""[rnn], [crnn], [lstm], [gru] against transcriptions of darknet's forward_*_layer, with the state
carried across calls, darknet's time_steps × batch layout, and the .weights order of their inner layers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from darknet_ref import assert_close, batchnorm, build, conv, flat, logistic

import netcfg
from netcfg.modules.recurrent import reset_state, set_time_steps

ACT = {
    "linear": lambda v: v,
    "leaky": lambda v: v if v > 0 else 0.1 * v,
    "logistic": logistic,
    "loggy": lambda v: 2 * logistic(v) - 1,
    "tanh": math.tanh,
}


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights and batch-norm statistics (positive variances), then eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            if t.is_floating_point():
                values = (
                    torch.rand(t.shape, generator=gen) + 0.5
                    if "running_var" in name
                    else torch.randn(t.shape, generator=gen)
                )
                t.copy_(values * (0.5 if t.dim() > 1 else 1.0))
    return model.eval()


def randn(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def connected(x: list[float], layer, act: str) -> list[float]:
    """forward_connected_layer for one sample: gemm(0,1) with the outputs×inputs matrix, then either
    normalize + scale_bias + add_bias (rolling statistics) or add_bias, then the activation."""
    w, bias = flat(layer.linear.weight), flat(layer.bn.bias if layer.bn is not None else layer.linear.bias)
    n, k = layer.linear.out_features, layer.linear.in_features
    out = [sum(x[i] * w[j * k + i] for i in range(k)) for j in range(n)]
    if layer.bn is not None:
        bn = layer.bn
        out = batchnorm(out, 1, flat(bn.weight), bias, flat(bn.running_mean), flat(bn.running_var))
    else:
        out = [v + b for v, b in zip(out, bias)]
    return [ACT[act](v) for v in out]


def add(*vectors: list[float]) -> list[float]:
    return [sum(vs) for vs in zip(*vectors)]


def run(model: netcfg.Network, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


# ---------------------------------------------------------------- [rnn]


def rnn_reference(layer, xs: list[list[float]], act: str, self_act: str, shortcut: bool) -> list[list[float]]:
    """forward_rnn_layer at inference over consecutive steps of one sequence, state starting at 0."""
    state = [0.0] * layer.hidden
    outs = []
    for x in xs:
        inp = connected(x, layer.input_layer, act)
        own = connected(state, layer.self_layer, self_act)
        state = add(state if shortcut else [0.0] * len(state), inp, own)
        outs.append(connected(state, layer.output_layer, act))
    return outs


@pytest.mark.parametrize(
    "keys, self_act, shortcut",
    [
        ("activation=leaky\nbatch_normalize=1", "leaky", False),
        ("activation=leaky\nlogistic=1", "logistic", False),
        ("activation=linear\nlogistic=2\nshortcut=1\nbatch_normalize=1", "loggy", True),
    ],
)
def test_rnn_steps_match_darknet_and_carry_state_across_calls(keys, self_act, shortcut):
    model = randomize(build(f"[rnn]\noutput=3\nhidden=4\n{keys}\n", c=2, h=2, w=1))
    layer = model.layers[0]
    frames = [randn(1, 2, 2, 1, seed=s) for s in range(3)]
    act = "leaky" if "leaky" in keys else "linear"
    want = rnn_reference(layer, [flat(f) for f in frames], act, self_act, shortcut)
    for frame, expected in zip(frames, want):
        assert_close(run(model, frame), expected)


def test_one_call_of_time_steps_equals_consecutive_calls_in_darknets_layout():
    """Batch sample t·N + b is step t of sequence b, as make_rnn_layer's batch / steps."""
    model = randomize(build("[rnn]\noutput=3\nhidden=4\nactivation=leaky\n", c=2, h=1, w=1))
    layer = model.layers[0]
    x = randn(6, 2, 1, 1)  # 3 steps × 2 sequences
    assert set_time_steps(model, 3) == 1
    out = run(model, x)
    for b in range(2):
        want = rnn_reference(layer, [flat(x[t * 2 + b]) for t in range(3)], "leaky", "leaky", False)
        for t in range(3):
            assert_close(out[t * 2 + b], want[t])
    with pytest.raises(ValueError, match="time_steps=3"):
        run(model, x[:4])


def test_reset_state_and_training_start_from_zeros():
    model = randomize(build("[rnn]\noutput=3\nhidden=4\nactivation=leaky\n", c=2, h=1, w=1))
    x = randn(2, 2, 1, 1)
    first = run(model, x)
    assert not torch.equal(run(model, x), first)
    assert reset_state(model) == 1
    assert torch.equal(run(model, x), first)
    model.train()
    with torch.no_grad():
        assert torch.equal(model(x), first) and torch.equal(model(x), first)
    model.eval()
    assert torch.equal(run(model, x), first)  # training left the carried state at zeros
    assert torch.equal(run(model, x[:1]), first[:1])  # another number of sequences starts afresh


# ---------------------------------------------------------------- [crnn]


def test_crnn_matches_darknet_convolutions_and_state():
    model = randomize(build("[crnn]\nsize=3\npad=1\noutput=3\nhidden=2\nactivation=leaky\n", c=2, h=4, w=3))
    layer = model.layers[0]

    def conv_layer(x, inner, c):
        w, b = flat(inner.conv.weight), flat(inner.conv.bias)
        out, _, _ = conv(x, c, 4, 3, w, b, inner.conv.out_channels, 3, 1, 1, 1)
        return [ACT["leaky"](v) for v in out]

    state = [0.0] * (2 * 4 * 3)
    for s in range(3):
        x = randn(1, 2, 4, 3, seed=s)
        state = add(conv_layer(flat(x), layer.input_layer, 2), conv_layer(state, layer.self_layer, 2))
        assert_close(run(model, x), conv_layer(state, layer.output_layer, 2))


def test_crnn_batch_norm_inner_layers():
    model = randomize(
        build("[crnn]\nsize=1\noutput=2\nhidden=3\nactivation=linear\nbatch_normalize=1\n", c=2, h=2, w=2)
    )
    layer = model.layers[0]

    def conv_bn(x, inner, c):
        raw, _, _ = conv(
            x, c, 2, 2, flat(inner.conv.weight), [0.0] * inner.conv.out_channels, inner.conv.out_channels, 1, 1, 1, 0
        )
        bn = inner.bn
        return batchnorm(raw, 4, flat(bn.weight), flat(bn.bias), flat(bn.running_mean), flat(bn.running_var))

    x = randn(1, 2, 2, 2)
    state = add(conv_bn(flat(x), layer.input_layer, 2), conv_bn([0.0] * 12, layer.self_layer, 3))
    assert_close(run(model, x), conv_bn(state, layer.output_layer, 3), rtol=1e-4)


def test_crnn_that_changes_height_and_width_is_refused():
    with pytest.raises(netcfg.CfgError, match="keep it"):
        build("[crnn]\nsize=3\npad=0\noutput=2\nhidden=2\n")


# ---------------------------------------------------------------- [lstm], [gru]


def lstm_reference(layer, xs: list[list[float]]) -> list[list[float]]:
    """forward_lstm_layer: W on h and U on x (linear connected layers), gates, cell, output h."""
    n = layer.outputs
    h, c = [0.0] * n, [0.0] * n
    outs = []
    for x in xs:
        gate = {
            g: add(connected(h, getattr(layer, "w" + g), "linear"), connected(x, getattr(layer, "u" + g), "linear"))
            for g in "figo"
        }
        f = [logistic(v) for v in gate["f"]]
        i = [logistic(v) for v in gate["i"]]
        g = [math.tanh(v) for v in gate["g"]]
        o = [logistic(v) for v in gate["o"]]
        c = [fk * ck + ik * gk for fk, ck, ik, gk in zip(f, c, i, g)]
        h = [ok * math.tanh(ck) for ok, ck in zip(o, c)]
        outs.append(h)
    return outs


def gru_reference(layer, xs: list[list[float]]) -> list[list[float]]:
    """forward_gru_layer without USET: the candidate goes through the logistic; weighted_sum_cpu."""
    state = [0.0] * layer.outputs
    outs = []
    for x in xs:
        z = [
            logistic(v)
            for v in add(connected(x, layer.input_z_layer, "linear"), connected(state, layer.state_z_layer, "linear"))
        ]
        r = [
            logistic(v)
            for v in add(connected(x, layer.input_r_layer, "linear"), connected(state, layer.state_r_layer, "linear"))
        ]
        forgot = [rk * sk for rk, sk in zip(r, state)]
        h = [
            logistic(v)
            for v in add(connected(x, layer.input_h_layer, "linear"), connected(forgot, layer.state_h_layer, "linear"))
        ]
        state = [zk * sk + (1 - zk) * hk for zk, sk, hk in zip(z, state, h)]
        outs.append(state)
    return outs


@pytest.mark.parametrize("kind, reference", [("lstm", lstm_reference), ("gru", gru_reference)])
@pytest.mark.parametrize("bn", [0, 1])
def test_gated_layers_match_darknet_over_steps(kind, reference, bn):
    model = randomize(build(f"[{kind}]\noutput=3\nbatch_normalize={bn}\n", c=2, h=1, w=2))
    frames = [randn(1, 2, 1, 2, seed=s) for s in range(3)]
    want = reference(model.layers[0], [flat(f) for f in frames])
    for frame, expected in zip(frames, want):
        assert_close(run(model, frame), expected, rtol=1e-4)


# ---------------------------------------------------------------- .weights


def test_rnn_weights_are_three_connected_layers_in_file_order(tmp_path):
    """RNN: input, self, output layer, each `[connected]` with bn: bias, weights, scales, mean, var."""
    model = build("[rnn]\noutput=2\nhidden=3\nbatch_normalize=1\n", c=1, h=1, w=1)
    sizes = [(1, 3), (3, 3), (3, 2)]
    count = sum(o + i * o + 3 * o for i, o in sizes)
    data = (np.arange(count, dtype=np.float32) + 1) / 100
    (tmp_path / "w.weights").write_bytes(np.array([0, 2, 5], "<i4").tobytes() + b"\0" * 8 + data.tobytes())
    netcfg.load_darknet_weights(model, tmp_path / "w.weights")
    layer, position = model.layers[0], 0
    for name, (i, o) in zip(("input_layer", "self_layer", "output_layer"), sizes):
        inner = getattr(layer, name)
        for tensor, n in [
            (inner.bn.bias, o),
            (inner.linear.weight, i * o),
            (inner.bn.weight, o),
            (inner.bn.running_mean, o),
            (inner.bn.running_var, o),
        ]:
            np.testing.assert_array_equal(tensor.detach().numpy().ravel(), data[position : position + n])
            position += n


@pytest.mark.parametrize(
    "body, first, second",
    [
        ("[lstm]\noutput=2\n", "wf", "wi"),
        ("[lstm]\noutput=2\n", "wo", "uf"),
        ("[gru]\noutput=2\n", "input_h_layer", "state_z_layer"),
        ("[crnn]\nsize=1\noutput=2\nhidden=3\nbatch_normalize=1\n", "self_layer", "output_layer"),
    ],
)
def test_inner_layers_follow_darknets_load_order(body, first, second):
    layer = build(body, c=2, h=1, w=1).layers[0]
    tensors = layer.darknet_tensors()
    ids = [id(t) for t in tensors]
    end_of_first = ids.index(id(getattr(layer, first).darknet_tensors()[-1]))
    assert ids[end_of_first + 1] == id(getattr(layer, second).darknet_tensors()[0])
    assert len(tensors) == len(list(layer.parameters())) + 2 * sum(
        1 for m in layer.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    )


def test_crnn_conv_weights_are_bias_scales_mean_var_weights(tmp_path):
    model = build("[crnn]\nsize=1\noutput=1\nhidden=1\nbatch_normalize=1\n", c=1, h=1, w=1)
    data = np.arange(15, dtype=np.float32) + 1
    (tmp_path / "w.weights").write_bytes(np.array([0, 2, 5], "<i4").tobytes() + b"\0" * 8 + data.tobytes())
    netcfg.load_darknet_weights(model, tmp_path / "w.weights")
    self_layer = model.layers[0].self_layer
    assert [self_layer.bn.bias.item(), self_layer.bn.weight.item(), self_layer.bn.running_mean.item()] == [6, 7, 8]
    assert [self_layer.bn.running_var.item(), self_layer.conv.weight.item()] == [9, 10]


def test_a_recurrent_stack_round_trips_through_a_weights_file(tmp_path):
    cfg = (
        "[crnn]\nsize=3\npad=1\noutput=3\nhidden=2\nbatch_normalize=1\n"
        "[rnn]\noutput=4\nhidden=3\n[lstm]\noutput=3\n[gru]\noutput=2\nbatch_normalize=1\n"
    )
    model = randomize(build(cfg, c=2, h=3, w=3))
    netcfg.save_darknet_weights(model, tmp_path / "a.weights")
    other = build(cfg, c=2, h=3, w=3).eval()
    assert netcfg.load_darknet_weights(other, tmp_path / "a.weights") == 4
    x = randn(2, 2, 3, 3)
    for _ in range(2):
        torch.testing.assert_close(run(other, x), run(model, x), rtol=0, atol=0)


# ---------------------------------------------------------------- real cfgs


def test_occlusion_tracker_runs_frame_by_frame(shared_cfgs):
    model = randomize(netcfg.build(shared_cfgs / "yolov3-tiny_occlusion_track.cfg", width=64, height=64))
    x = torch.rand(1, 3, 64, 64)
    first = run(model, x)
    second = run(model, x)
    assert [o.shape for o in first] == [o.shape for o in second]
    assert any(not torch.equal(a, b) for a, b in zip(first, second))
    reset_state(model)
    for a, b in zip(run(model, x), first):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["rnn.cfg", "rnn.train.cfg", "gru.cfg", "lstm.train.cfg", "crnn.train.cfg"])
def test_pure_recurrent_cfgs_run_on_their_256_inputs(name, shared_cfgs):
    """Their `[net]` sets `inputs=256` and no width or height: 256 values, read as 256×1×1."""
    model = netcfg.build(shared_cfgs / name)
    assert model.spec.input_shape == (256, 1, 1)
    out = run(model, torch.rand(2, 256, 1, 1))
    assert out.shape == (2, 256, 1, 1) and torch.isfinite(out).all()


# ---------------------------------------------------------------- [history]


def history_reference(xs: list[list[float]], batch: int, steps: int, size: int, prev: list[float]):
    """forward_history_layer: per step and sequence, the previous output's first (size−1)·inputs
    values shifted behind the input; prev_state is the last step's output."""
    inputs = len(xs[0])
    if steps == 1:
        return [x + [0.0] * inputs * (size - 1) for x in xs], prev
    outputs = inputs * size
    out = [[0.0] * outputs for _ in xs]
    prev_output = [prev[b * outputs : (b + 1) * outputs] for b in range(batch)]
    for i in range(steps):
        for b in range(batch):
            row = out[i * batch + b]
            row[inputs:] = prev_output[b][: inputs * (size - 1)]
            row[:inputs] = xs[i * batch + b]
        prev_output = [out[i * batch + b] for b in range(batch)]
    return out, [v for row in prev_output for v in row]


def test_history_stacks_the_last_inputs_across_calls_like_darknet():
    model = build("[history]\nhistory_size=3\n", c=2, h=1, w=2)
    assert set_time_steps(model, 2) == 1
    prev = [0.0] * 2 * 12
    for call in range(3):
        x = randn(4, 2, 1, 2, seed=call)  # 2 steps × 2 sequences
        want, prev = history_reference([flat(s) for s in x], 2, 2, 3, prev)
        assert_close(run(model, x), [v for row in want for v in row])


def test_history_at_one_time_step_copies_the_input_and_leaves_zeros():
    model = build("[history]\nhistory_size=3\n", c=2, h=1, w=2)
    x = randn(2, 2, 1, 2)
    want, _ = history_reference([flat(s) for s in x], 2, 1, 3, [])
    assert_close(run(model, x), [v for row in want for v in row])
    assert model.spec.layers[0].shape == (6, 1, 2)
