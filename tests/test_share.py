"""`share_index` (darknet's share_layer, as in resnet152_trident.cfg): a `[convolutional]` that uses another
layer's weights, biases and batch norm. One set of parameters in PyTorch (tied, not copied), nothing for
the sharing layer in `.weights` files (darknet's loader and saver skip it), shapes checked up front."""

import struct

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import netcfg

NET = "[net]\nwidth=8\nheight=8\nchannels=4\n"
CONV = "[convolutional]\nfilters=4\nsize={size}\npad=1\nbatch_normalize=1\nactivation={act}\n"
SHARED = NET + CONV.format(size=3, act="leaky") + CONV.format(size=3, act="linear") + "share_index=-1\n"


def test_the_sharing_layer_holds_the_same_tensors():
    model = netcfg.build(SHARED + CONV.format(size=3, act="linear") + "share_index=0\n")
    assert [layer.shares for layer in model.spec.layers] == [None, 0, 0]
    assert model.layers[1].conv.weight is model.layers[0].conv.weight
    assert model.layers[2].bn is model.layers[0].bn
    assert sum(p.numel() for p in model.parameters()) == 4 * 4 * 9 + 2 * 4


def test_outputs_apply_the_shared_weights():
    """Reference: darknet's forward with l.weights, l.scales, l.biases, rolling stats of the shared layer."""
    model = netcfg.build(SHARED)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p))
        model.layers[0].bn.running_var.uniform_(0.5, 2)
    x = torch.randn(1, 4, 8, 8)
    w = model.layers[0].conv.weight
    bn = model.layers[0].bn

    def conv_bn(t):
        y = F.conv2d(t, w, padding=1)
        y = (y - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + 1e-5)
        return y * bn.weight[:, None, None] + bn.bias[:, None, None]

    want = conv_bn(F.leaky_relu(conv_bn(x), 0.1))
    torch.testing.assert_close(model(x), want)


def test_weights_files_hold_the_shared_layer_once(tmp_path):
    model = netcfg.build(SHARED)
    netcfg.save_darknet_weights(model, tmp_path / "s.weights")
    data = (tmp_path / "s.weights").read_bytes()
    assert len(data) == 20 + 4 * (4 * 4 + 4 * 4 * 9)  # header, then layer 0 only: bias, scale, mean, var, weights
    floats = np.arange(4 * 4 + 144, dtype="<f4") / 100 + 0.5
    (tmp_path / "t.weights").write_bytes(struct.pack("<iiiQ", 0, 2, 5, 0) + floats.tobytes())
    assert netcfg.load_darknet_weights(model, tmp_path / "t.weights") == 2
    assert torch.equal(model.layers[1].conv.weight.flatten(), torch.from_numpy(floats[16:]))


def test_generated_code_ties_the_same_way():
    model = netcfg.build(SHARED)
    namespace: dict = {}
    exec(compile(netcfg.to_python(model.spec, class_name="Generated"), "<generated>", "exec"), namespace)
    generated = namespace["Generated"]()
    assert generated.layers[1].conv is generated.layers[0].conv
    generated.load_state_dict(model.state_dict())
    x = torch.randn(1, 4, 8, 8)
    torch.testing.assert_close(generated.eval()(x), model(x))


@pytest.mark.parametrize(
    ("share", "message"),
    [
        ("share_index=0\nsize=1", "layer 0's conv.weight is (4, 4, 3, 3), this layer's (4, 4, 1, 1)"),
        ("share_index=5", "outside layers"),
        ("share_index=-2\n", "which is not a layer"),
    ],
)
def test_bad_shares_are_located_errors(share, message):
    cfg = NET + CONV.format(size=3, act="leaky") + "[convolutional]\nfilters=4\nbatch_normalize=1\n" + share + "\n"
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.parse(cfg)
    (item,) = exc.value.items
    assert item.key == "share_index" and item.layer == 1 and message in item.message


def test_sharing_a_non_convolution_is_refused():
    with pytest.raises(netcfg.CfgError, match=r"names layer 0, which is \[maxpool\]"):
        netcfg.parse(NET + "[maxpool]\nsize=2\nstride=1\n" + CONV.format(size=3, act="linear") + "share_index=0\n")
