"""The `conv` family as a whole: cfg errors, the keys only `[convolutional]` honours, and the BFLOPs
of the functional convolutions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from convkit import build, norm, randomize_norms

import netcfg

# ---------------------------------------------------------------- cfg errors

CFG_ERRORS = [
    ("[dcn]\nfilters=4\nversion=3\n", 7, "version"),
    ("[dcn]\nfilters=4\ndeformable_groups=3\n", 7, "deformable_groups"),
    ("[coordconv]\nfilters=4\ngroups=4\n", 7, "groups"),
    ("[ghost]\nfilters=4\nratio=1\n", 7, "ratio"),
    ("[ghost]\nfilters=4\ndw_size=4\n", 7, "dw_size"),
    ("[blurpool]\nfilt_size=8\n", 6, "filt_size"),
    ("[blurpool]\npad_type=mirror\n", 6, "pad_type"),
    ("[acb]\nfilters=4\nsize=4\n", 7, "size"),
    ("[blaze]\nfilters=2\n", 6, "filters"),
    ("[blaze]\nfilters=4\nstride=3\n", 7, "stride"),
    ("[dwconv]\nfilters=4\nactivation=reul\n", 7, "activation"),
    ("[mixconv]\nfilters=4\nsizes=3,4\n", 7, "sizes"),
    ("[mixconv]\nfilters=4\nmethod=equal\n", 7, "method"),
    ("[mixconv]\nfilters=4\nsizes=1,3,5\n", 7, "sizes"),
    ("[mixconv]\nfilters=6\ndepthwise=1\n", 5, None),
    ("[odconv]\nfilters=4\nreduction=0\n", 7, "reduction"),
    ("[refconv]\nfilters=4\nantialiasing=1\n", 7, "antialiasing"),
]


@pytest.mark.parametrize("body, line, key", CFG_ERRORS, ids=[" ".join(c[0].split("\n")[::2]) for c in CFG_ERRORS])
def test_bad_values_are_cfg_errors_at_their_line(body, line, key):
    with pytest.raises(netcfg.CfgError) as exc:
        build(body)
    (item,) = exc.value.items
    assert item.line == line and item.key == key, item


CONVOLUTIONAL_ONLY_KEYS = ["cbn=1", "binary=1", "xnor=1", "antialiasing=1", "share_index=0", "bin_output=1"]


@pytest.mark.parametrize("variant", ["dcn", "acb", "refconv", "odconv", "coordconv"])
@pytest.mark.parametrize("key", CONVOLUTIONAL_ONLY_KEYS)
def test_conv_variants_refuse_the_keys_only_convolutional_honours(variant, key):
    with pytest.raises(netcfg.CfgError) as exc:
        build(f"[{variant}]\nfilters=4\nsize=3\n{key}\ngroups=4\n")
    (item,) = exc.value.items
    assert (item.line, item.key) == (8, key.split("=")[0]) and "unknown key" in item.message, item


def test_cbn_on_convolutional_is_batch_norm():
    model = build("[convolutional]\nfilters=4\nsize=3\npad=1\ncbn=1\nactivation=linear\n")
    randomize_norms(model)
    model.eval()
    x = torch.randn(2, 4, 8, 8)
    state = model.layers[0].state_dict()
    assert "conv.bias" not in state
    expected = norm(F.conv2d(x, state["conv.weight"], padding=1), state, "bn")
    torch.testing.assert_close(model(x), expected)


# ---------------------------------------------------------------- BFLOPs of blocks the generic count misses


def test_bflops_of_functional_convolutions():
    spec = netcfg.parse(
        "[net]\nwidth=8\nheight=8\nchannels=4\n"
        "[refconv]\nfilters=6\nsize=3\npad=1\ngroups=2\n"
        "[dcn]\nfilters=4\nsize=3\npad=1\nstride=2\ndeformable_groups=2\n"
        "[blurpool]\nfilt_size=5\n"
    )
    refconv, dcn, blurpool = (layer.section.bflops(list(layer.input_shapes), layer.shape) for layer in spec.layers)
    assert refconv == pytest.approx(2 * 6 * 2 * 9 * 64 / 1e9)
    assert dcn == pytest.approx(2 * (4 * 6 * 9 + 2 * 9 * 3 * 6 * 9) * 16 / 1e9)  # weights + offset/mask conv
    assert blurpool == pytest.approx(2 * 4 * 25 * 4 / 1e9)
