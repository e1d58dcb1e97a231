"""darknet's schedule and SGD update: netcfg's LambdaLR and torch SGD against transcriptions of
network.c get_current_rate and convolutional_layer.c update_convolutional_layer."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import netcfg
from netcfg.train import collate, darknet_rate, darknet_scheduler, darknet_sgd, label_path, read_labels


def get_current_rate(net, batch_num, rand):
    """network.c, transcribed."""
    if batch_num < net["burn_in"]:
        return net["learning_rate"] * pow(batch_num / net["burn_in"], net["power"])
    policy, lr = net["policy"], net["learning_rate"]
    if policy == "constant":
        return lr
    if policy == "step":
        return lr * pow(net["scale"], batch_num // net["step"])
    if policy == "steps":
        rate = lr
        for i in range(len(net["steps"])):
            if net["steps"][i] > batch_num:
                return rate
            rate *= net["scales"][i]
        return rate
    if policy == "exp":
        return lr * pow(net["gamma"], batch_num)
    if policy == "poly":
        return lr * pow(1 - batch_num / net["max_batches"], net["power"])
    if policy == "random":
        return lr * pow(rand, net["power"])
    if policy == "sigmoid":
        return lr * (1.0 / (1.0 + math.exp(net["gamma"] * (batch_num - net["step"]))))
    last, cycle = 0, net.get("sgdr_cycle", net["max_batches"])
    while last + cycle < batch_num:
        last += cycle
        cycle *= net.get("sgdr_mult", 2)
    low = net.get("learning_rate_min", 0.00001)
    return low + 0.5 * (lr - low) * (1.0 + math.cos((batch_num - last) * 3.14159265 / cycle))


POLICIES = {
    "constant": {},
    "step": {"step": 7, "scale": 0.5},
    "steps": {"steps": [-1, 10, 30], "scales": [0.1, 10, 0.1]},
    "exp": {"gamma": 0.97},
    "poly": {"power": 3},
    "sigmoid": {"gamma": 0.2, "step": 25},
    "sgdr": {"sgdr_cycle": 8, "sgdr_mult": 3, "learning_rate_min": 0.0001},
    "random": {},
}


def _net(policy: str, burn_in: int):
    keys = {"learning_rate": 0.01, "burn_in": burn_in, "power": 4, "max_batches": 60, "policy": policy}
    keys |= POLICIES[policy]
    lines = "".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}\n" for k, v in keys.items())
    spec = netcfg.parse(f"[net]\nwidth=8\nheight=8\nchannels=3\n{lines}[convolutional]\nfilters=2\nsize=1\n")
    return spec.net, {"scale": 1, "step": 1, "gamma": 1, **keys}


@pytest.mark.parametrize("burn_in", [0, 5])
@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_rate_is_get_current_rate(policy, burn_in):
    net, keys = _net(policy, burn_in)
    for update in range(60):
        expected = get_current_rate(keys, update, 0.3)
        assert darknet_rate(net, update, lambda: 0.3) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_scheduler_gives_the_rate_of_the_update_it_precedes():
    net, keys = _net("steps", 5)
    model = netcfg.build(
        "[net]\nwidth=8\nheight=8\nchannels=3\nburn_in=5\npolicy=steps\nsteps=-1,10,30\n"
        "scales=.1,10,.1\nlearning_rate=0.01\n[convolutional]\nfilters=2\nsize=1\n"
    )
    optimizer = darknet_sgd(model)
    scheduler = darknet_scheduler(optimizer, model.spec.net)
    for update in range(1, 40):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(get_current_rate(keys, update, 0), abs=1e-15)
        optimizer.step()
        scheduler.step()


def test_sgd_is_update_convolutional_layer():
    """Three updates with fixed gradients: weights decay, biases and batch-norm scales do not."""
    cfg = "[net]\nwidth=4\nheight=4\nchannels=2\nbatch=4\nmomentum=0.8\ndecay=0.05\nlearning_rate=0.1\n"
    model = netcfg.build(cfg + "[convolutional]\nfilters=3\nsize=3\npad=1\nbatch_normalize=1\n").double().train()
    conv = model.layers[0]
    names = {"weights": conv.conv.weight, "biases": conv.bn.bias, "scales": conv.bn.weight}
    state = {k: v.detach().clone() for k, v in names.items()}
    updates = {k: torch.zeros_like(v) for k, v in names.items()}
    optimizer = darknet_sgd(model)
    batch, rate, momentum, decay = 4, 0.1, 0.8, 0.05
    torch.manual_seed(0)
    for _ in range(3):
        grads = {k: torch.randn_like(v) for k, v in names.items()}  # gradients of cost / batch
        for k, v in names.items():
            v.grad = grads[k].clone()
            updates[k] += -grads[k] * batch  # darknet accumulates the negative gradient of the summed cost
        optimizer.step()
        updates["weights"] += -decay * batch * state["weights"]  # axpy(-decay*batch, weights, weight_updates)
        for k in names:
            state[k] += rate / batch * updates[k]
            updates[k] *= momentum
    for k, v in names.items():
        torch.testing.assert_close(v.detach(), state[k])


def test_label_paths_and_files(tmp_path):
    assert label_path("/data/VOC2007/JPEGImages/000001.jpg") == Path("/data/VOC2007/labels/000001.txt")
    assert label_path("/coco/images/train2017/a.PNG") == Path("/coco/labels/train2017/a.txt")
    assert label_path("/d/img/b.jpeg") == Path("/d/img/b.txt")
    path = tmp_path / "a.txt"
    path.write_text("1 0.5 0.5 0.2 0.3\n\n0 0.1 0.2 0.05 0.06 extra\n")
    rows = read_labels(path)
    torch.testing.assert_close(rows, torch.tensor([[1, 0.5, 0.5, 0.2, 0.3], [0, 0.1, 0.2, 0.05, 0.06]]))
    assert read_labels(tmp_path / "none.txt").shape == (0, 5)
    path.write_text("1 0.5 0.5 0.2\n")
    with pytest.raises(netcfg.NetcfgError, match=r"a.txt:1: a label line"):
        read_labels(path)


def test_collate_pads_with_rows_darknet_stops_at():
    images, targets = collate(
        [(torch.zeros(3, 4, 4), torch.tensor([[1, 0.5, 0.5, 0.2, 0.2]])), (torch.ones(3, 4, 4), torch.zeros(0, 5))]
    )
    assert images.shape == (2, 3, 4, 4) and targets.shape == (2, 1, 5)
    assert targets[1].tolist() == [[-1, 0, 0, 0, 0]]


def test_groups_decay_weights_only_and_scale_a_layers_rate():
    model = netcfg.build(
        "[net]\nwidth=4\nheight=4\nchannels=2\nlearning_rate=0.1\ndecay=0.01\n"
        "[convolutional]\nfilters=3\nsize=1\nbatch_normalize=1\n[convolutional]\nfilters=2\nsize=1\nlearning_rate=0.5\n"
        "[convolutional]\nfilters=2\nsize=1\n[shortcut]\nfrom=-2\nweights_type=per_feature\n"
    )
    groups = {id(p): (g["lr"], g["weight_decay"]) for g in darknet_sgd(model).param_groups for p in g["params"]}
    first, second, _, shortcut = model.layers
    assert groups[id(shortcut.weights)] == (0.1, 0.01)
    assert groups[id(first.conv.weight)] == (0.1, 0.01) and groups[id(first.bn.weight)] == (0.1, 0.0)
    assert groups[id(second.conv.weight)] == (0.05, 0.01) and groups[id(second.conv.bias)] == (0.05, 0.0)
    assert len(groups) == len(list(model.parameters()))
