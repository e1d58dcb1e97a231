"""`[conv_lstm]` against a transcription of darknet's forward_conv_lstm_layer (its GPU forward for
`bottleneck`), on flat lists: state carried across calls, peephole, the cell clamp, the time_steps ×
batch layout, and the `.weights` order of load_weights_upto."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from darknet_ref import assert_close, batchnorm, build, conv, flat, logistic
from test_recurrent import ACT, randn, randomize, run

import netcfg
from netcfg.modules.recurrent import reset_state, set_time_steps

C, H, W = 2, 3, 3


def conv_layer(x: list[float], inner, c: int, act: str, size: int) -> list[float]:
    """forward_convolutional_layer on one image: im2col + gemm, then batch norm (rolling statistics)
    or the bias, then the activation; height×width kept (pad size/2)."""
    n = inner.conv.out_channels
    bn = inner.bn
    bias = [0.0] * n if bn is not None else flat(inner.conv.bias)
    out, _, _ = conv(x, c, H, W, flat(inner.conv.weight), bias, n, size, 1, 1, size // 2)
    if bn is not None:
        out = batchnorm(out, H * W, flat(bn.weight), flat(bn.bias), flat(bn.running_mean), flat(bn.running_var))
    return [ACT[act](v) for v in out]


def summed(*vectors: list[float]) -> list[float]:
    return [sum(vs) for vs in zip(*vectors)]


def conv_lstm_reference(layer, xs, act="linear", size=3, peephole=False, constrain=32.0, lstm_act="tanh"):
    """forward_conv_lstm_layer (CPU) over consecutive steps of one sequence, h and c starting at 0:
    vf, vi on the old c; wf..wo on h; uf..uo on x; f, i, o logistic, g tanh; c = f·c + i·g;
    vo on the new c; h = o·tanh(c); output h; then c clamped to ±constrain."""
    n = layer.outputs
    h, c = [0.0] * (n * H * W), [0.0] * (n * H * W)
    tanh = ACT[lstm_act]

    def run_conv(name, x, channels):
        return conv_layer(x, getattr(layer, name), channels, act, size)

    outs = []
    for x in xs:
        vf = run_conv("vf", c, n) if peephole else [0.0] * len(c)
        vi = run_conv("vi", c, n) if peephole else [0.0] * len(c)
        w = {g: run_conv("w" + g, h, n) for g in "figo"}
        u = {g: run_conv("u" + g, x, C) for g in "figo"}
        f = [logistic(v) for v in summed(w["f"], u["f"], vf)]
        i = [logistic(v) for v in summed(w["i"], u["i"], vi)]
        g = [tanh(v) for v in summed(w["g"], u["g"])]
        c = [fk * ck + ik * gk for fk, ck, ik, gk in zip(f, c, i, g)]
        vo = run_conv("vo", c, n) if peephole else [0.0] * len(c)
        o = [logistic(v) for v in summed(w["o"], u["o"], vo)]
        h = [ok * tanh(ck) for ok, ck in zip(o, c)]
        if constrain:
            c = [min(constrain, max(-constrain, v)) for v in c]
        outs.append(h)
    return outs


def bottleneck_reference(layer, xs, act="linear", shortcut=False):
    """forward_conv_lstm_layer_gpu with bottleneck, batch 1: wf on [h, x] (2·output channels) then
    tanh; the U layers read that; no W terms; with shortcut the first outputs/2 values gain it."""
    n = layer.outputs
    h, c = [0.0] * (n * H * W), [0.0] * (n * H * W)
    outs = []
    for x in xs:
        mixed = [math.tanh(v) for v in conv_layer(h + x, layer.wf, 2 * n, act, 3)]
        u = {g: conv_layer(mixed, getattr(layer, "u" + g), C, act, 3) for g in "figo"}
        f, i, o = ([logistic(v) for v in u[g]] for g in "fio")
        g = [math.tanh(v) for v in u["g"]]
        c = [fk * ck + ik * gk for fk, ck, ik, gk in zip(f, c, i, g)]
        h = [ok * math.tanh(ck) for ok, ck in zip(o, c)]
        out = list(h)
        if shortcut:
            for k in range(len(out) // 2):
                out[k] += mixed[k]
        c = [min(32.0, max(-32.0, v)) for v in c]
        outs.append(out)
    return outs


def conv_lstm(keys: str, output: int = 2, c: int = C) -> netcfg.Network:
    return randomize(build(f"[conv_lstm]\nsize=3\npad=1\noutput={output}\n{keys}\n", c=c, h=H, w=W))


@pytest.mark.parametrize(
    "keys, act, peephole",
    [
        ("", "linear", False),
        ("activation=leaky\nbatch_normalize=1", "leaky", False),
        ("activation=leaky\npeephole=1", "leaky", True),
        ("peephole=1\nbatch_normalize=1", "linear", True),
    ],
)
def test_steps_match_darknet_and_carry_state_across_calls(keys, act, peephole):
    model = conv_lstm(keys)
    frames = [randn(1, C, H, W, seed=s) for s in range(3)]
    want = conv_lstm_reference(model.layers[0], [flat(f) for f in frames], act, peephole=peephole)
    for frame, expected in zip(frames, want):
        assert_close(run(model, frame), expected, rtol=1e-4)


def test_the_cell_is_clamped_to_state_constrain_after_the_output():
    model = conv_lstm("state_constrain=1")
    with torch.no_grad():
        model.layers[0].ug.conv.bias.fill_(5.0)  # g ≈ 1 every step: c grows past the bound
        model.layers[0].ui.conv.bias.fill_(5.0)
        model.layers[0].uf.conv.bias.fill_(5.0)
    frames = [randn(1, C, H, W, seed=s) for s in range(4)]
    want = conv_lstm_reference(model.layers[0], [flat(f) for f in frames], constrain=1.0)
    unclamped = conv_lstm_reference(model.layers[0], [flat(f) for f in frames], constrain=0.0)
    assert not np.allclose(want[-1], unclamped[-1], atol=1e-3)
    for frame, expected in zip(frames, want):
        assert_close(run(model, frame), expected, rtol=1e-4)


def test_lstm_activation_replaces_tanh():
    model = conv_lstm("lstm_activation=logistic")
    frames = [randn(1, C, H, W, seed=s) for s in range(2)]
    want = conv_lstm_reference(model.layers[0], [flat(f) for f in frames], lstm_act="logistic")
    for frame, expected in zip(frames, want):
        assert_close(run(model, frame), expected, rtol=1e-4)


@pytest.mark.parametrize("shortcut", [False, True])
def test_bottleneck_mixes_state_and_input_as_darknets_gpu_forward(shortcut):
    model = conv_lstm(f"bottleneck=1\nshortcut={int(shortcut)}", output=C)
    frames = [randn(1, C, H, W, seed=s) for s in range(3)]
    want = bottleneck_reference(model.layers[0], [flat(f) for f in frames], shortcut=shortcut)
    for frame, expected in zip(frames, want):
        assert_close(run(model, frame), expected, rtol=1e-4)


def test_time_steps_layout_reset_and_a_new_number_of_sequences():
    model = conv_lstm("activation=leaky\npeephole=1")
    layer = model.layers[0]
    x = randn(6, C, H, W)  # 3 steps × 2 sequences
    set_time_steps(model, 3)
    out = run(model, x)
    for b in range(2):
        want = conv_lstm_reference(layer, [flat(x[t * 2 + b]) for t in range(3)], "leaky", peephole=True)
        for t in range(3):
            assert_close(out[t * 2 + b], want[t], rtol=1e-4)
    assert layer.constrain() == 96  # darknet's default: 32 × time_steps
    set_time_steps(model, 1)
    carried = run(model, x[:2])  # continues the 2 sequences
    assert reset_state(model) == 1
    first = run(model, x[:2])
    assert not torch.equal(carried, first)
    fresh = [conv_lstm_reference(layer, [flat(x[b])], "leaky", peephole=True)[0] for b in range(2)]
    assert_close(first, [v for row in fresh for v in row], rtol=1e-4)
    torch.testing.assert_close(run(model, x[:1]), first[:1])  # another number of sequences starts afresh


def test_keys_that_darknet_cannot_run_are_located_errors():
    with pytest.raises(netcfg.CfgError, match="keep it") as exc:
        build("[conv_lstm]\nsize=3\npad=0\noutput=2\n", c=C, h=H, w=W)
    assert exc.value.items[0].key == "size"
    with pytest.raises(netcfg.CfgError, match="bottleneck") as exc:
        build("[conv_lstm]\nsize=3\npad=1\noutput=4\nbottleneck=1\n", c=C, h=H, w=W)
    assert exc.value.items[0].key == "bottleneck" and exc.value.items[0].line == 9
    with pytest.raises(netcfg.CfgError, match="groups=2 must divide output=3"):
        build("[conv_lstm]\nsize=1\noutput=3\ngroups=2\n", c=C, h=H, w=W)


# ---------------------------------------------------------------- .weights


def conv_floats(c: int, n: int, size: int, bn: bool) -> int:
    """load_convolutional_weights: biases n, [scales, mean, variance n each], weights n·c·size²."""
    return n + (3 * n if bn else 0) + n * c * size * size


@pytest.mark.parametrize(
    "keys, order",
    [
        ("", ["wf", "wi", "wg", "wo", "uf", "ui", "ug", "uo"]),
        ("peephole=1\nbatch_normalize=1", ["vf", "vi", "vo", "wf", "wi", "wg", "wo", "uf", "ui", "ug", "uo"]),
        ("bottleneck=1\npeephole=1", ["vf", "vi", "vo", "wf", "uf", "ui", "ug", "uo"]),
    ],
)
def test_weights_follow_darknets_load_order_and_round_trip(keys, order, tmp_path):
    n = C
    model = build(f"[conv_lstm]\nsize=3\npad=1\noutput={n}\n{keys}\n", c=C, h=H, w=W)
    bn = "batch_normalize=1" in keys
    sizes = [
        conv_floats((2 * n if "bottleneck" in keys else n) if g == "wf" else (C if g[0] == "u" else n), n, 3, bn)
        for g in order
    ]
    data = (np.arange(sum(sizes), dtype=np.float32) + 1) / 1000
    path = tmp_path / "w.weights"
    path.write_bytes(np.array([0, 2, 5], "<i4").tobytes() + b"\0" * 8 + data.tobytes())
    netcfg.load_darknet_weights(model, path)
    layer, position = model.layers[0], 0
    for name, count in zip(order, sizes):
        inner = getattr(layer, name)
        first = (inner.bn.bias if bn else inner.conv.bias).detach().numpy().ravel()
        np.testing.assert_array_equal(first, data[position : position + n])
        weights = inner.conv.weight.detach().numpy().ravel()
        np.testing.assert_array_equal(weights, data[position + count - weights.size : position + count])
        position += count
    netcfg.save_darknet_weights(model, tmp_path / "again.weights")
    assert (tmp_path / "again.weights").read_bytes() == path.read_bytes()


def test_a_saved_model_loads_into_a_fresh_one_and_runs_the_same(tmp_path):
    cfg = (
        "[conv_lstm]\nsize=3\npad=1\noutput=3\npeephole=1\nbatch_normalize=1\nactivation=leaky\n"
        "[conv_lstm]\nsize=1\noutput=2\n"
    )
    model = randomize(build(cfg, c=C, h=H, w=W))
    netcfg.save_darknet_weights(model, tmp_path / "a.weights")
    other = build(cfg, c=C, h=H, w=W).eval()
    assert netcfg.load_darknet_weights(other, tmp_path / "a.weights") == 2
    x = randn(1, C, H, W)
    for _ in range(3):
        torch.testing.assert_close(run(other, x), run(model, x), rtol=0, atol=0)


@pytest.mark.parametrize("keys, reads", [("peephole=1", [2] * 4 + [4] * 7), ("bottleneck=1", [4] * 4 + [8])])
def test_bflops_are_darknets_sum_of_inner_convolutions(keys, reads):
    """make_conv_lstm_layer: the inner layers' 2·n·size²·c/groups·out_h·out_w, plus 12 (peephole) or 9
    operations per output value."""
    c = 4 if "bottleneck" in keys else 2
    spec = netcfg.parse(f"[net]\nwidth=5\nheight=3\nchannels={c}\n[conv_lstm]\nsize=3\npad=1\noutput=4\n{keys}\n")
    layer = spec.layers[0]
    want = sum(2.0 * 4 * 9 * r * 15 for r in reads) / 1e9 + (12 if "peephole" in keys else 9) * 4 * 15 / 1e9
    assert layer.section.bflops(list(layer.input_shapes), layer.shape) == pytest.approx(want)
