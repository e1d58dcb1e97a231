"""Attention sections as a family: shapes, hidden widths, gradients, tracing, BFLOPs and cfg errors."""

from __future__ import annotations

import pytest
import torch
from attentionkit import build, cfg, randomized
from torch.utils.flop_counter import FlopCounterMode

import netcfg
from netcfg.registry import section_types

ATTENTION = sorted(t.name for t in section_types() if t.model.family == "attention")


# ---------------------------------------------------------------- shapes and widths

SHAPES = [
    ("[se]\n", (8, 6, 6), (8, 6, 6)),
    ("[cbam]\n", (16, 5, 7), (16, 5, 7)),
    ("[bam]\n", (16, 6, 6), (16, 6, 6)),
    ("[scse]\n", (8, 4, 6), (8, 4, 6)),
    ("[eca]\n", (8, 6, 6), (8, 6, 6)),
    ("[gc]\n", (8, 6, 6), (8, 6, 6)),
    ("[nonlocal]\n", (8, 5, 7), (8, 5, 7)),
    ("[cc]\n", (8, 5, 7), (8, 5, 7)),
    ("[sk]\ngroups=4\n", (8, 6, 6), (8, 6, 6)),
    ("[sk]\nfilters=12\ngroups=4\nstride=2\n", (8, 7, 6), (12, 4, 3)),
    ("[splat]\nfilters=6\nstride=2\n", (8, 7, 6), (6, 4, 3)),
    ("[splat]\nfilters=6\nsize=1\n", (8, 7, 6), (6, 7, 6)),
    ("[gam]\n", (8, 6, 6), (8, 6, 6)),
    ("[ca]\n", (8, 5, 7), (8, 5, 7)),
    ("[simam]\n", (8, 6, 6), (8, 6, 6)),
    ("[triplet]\n", (8, 5, 7), (8, 5, 7)),
    ("[fan]\n", (16, 3, 5), (16, 3, 5)),
]


@pytest.mark.parametrize(("body", "shape_in", "shape_out"), SHAPES, ids=[s[0].split("]")[0][1:] for s in SHAPES])
def test_inferred_shape_matches_the_output(body, shape_in, shape_out):
    model = build(body, *shape_in)
    assert model.spec.layers[0].shape == shape_out
    assert tuple(model(torch.randn(1, *shape_in)).shape[1:]) == shape_out


def test_every_attention_section_is_covered():
    covered = {body.split("]")[0][1:] for body, _, _ in SHAPES}
    assert covered == set(ATTENTION) and len(ATTENTION) == 15


@pytest.mark.parametrize(
    ("body", "c", "name", "shape"),
    [
        ("[se]\n", 8, "fc1.weight", (1, 8, 1, 1)),  # max(1, 8 // 16)
        ("[se]\nreduction=4\n", 8, "fc1.weight", (2, 8, 1, 1)),
        ("[cbam]\n", 64, "mlp.0.weight", (4, 64, 1, 1)),
        ("[bam]\nreduction=4\ndilation_convs=3\n", 16, "spatial.3.conv.weight", (4, 4, 3, 3)),
        ("[scse]\n", 8, "cse.fc1.weight", (4, 8, 1, 1)),
        ("[gc]\n", 64, "add.0.weight", (4, 64, 1, 1)),  # int(64 · 0.0625)
        ("[nonlocal]\nreduction=4\n", 16, "g.weight", (4, 16, 1, 1)),
        ("[cc]\n", 16, "query.weight", (2, 16, 1, 1)),  # C // 8
        ("[sk]\ngroups=4\nreduction=2\nmin_dim=3\n", 8, "squeeze.conv.weight", (4, 8, 1, 1)),  # max(8 // 2, 3)
        ("[sk]\ngroups=4\n", 8, "squeeze.conv.weight", (32, 8, 1, 1)),  # max(8 // 16, 32)
        ("[splat]\nfilters=8\n", 64, "fc1.conv.weight", (32, 8, 1, 1)),  # max(64·2 // 4, 32)
        ("[splat]\nfilters=8\n", 128, "fc1.conv.weight", (64, 8, 1, 1)),  # max(128·2 // 4, 32)
        ("[gam]\n", 8, "channel.0.weight", (2, 8)),
        ("[ca]\n", 8, "squeeze.conv.weight", (8, 8, 1, 1)),  # max(8, 8 // 32)
        ("[ca]\n", 512, "squeeze.conv.weight", (16, 512, 1, 1)),
        ("[fan]\nmlp_ratio=2\n", 8, "mlp.0.weight", (16, 8)),
    ],
)
def test_hidden_widths(body, c, name, shape):
    assert tuple(build(body, c, 4, 4).layers[0].state_dict()[name].shape) == shape


@pytest.mark.parametrize(("c", "k"), [(2, 1), (8, 3), (16, 3), (64, 3), (128, 5), (256, 5), (1024, 5), (2048, 7)])
def test_eca_adaptive_kernel(c, k):
    # t = int(|(log2 C + 1) / 2|), made odd: worked out by hand for each C above.
    assert build("[eca]\n", c, 2, 2).layers[0].conv.weight.shape[-1] == k
    assert build("[eca]\nk_size=9\n", c, 2, 2).layers[0].conv.weight.shape[-1] == 9


# ---------------------------------------------------------------- gradients and tracing

VARIANTS = [
    "[se]\nreduction=2\ngate=hard_sigmoid\n",
    "[cbam]\nreduction=2\n",
    "[bam]\nreduction=4\ndilation=2\n",
    "[scse]\n",
    "[eca]\n",
    "[gc]\nratio=0.25\nfusion=add,mul\n",
    "[gc]\nratio=0.25\npooling=avg\nfusion=mul\n",
    "[nonlocal]\n",
    "[nonlocal]\nmode=gaussian\nbn=0\n",
    "[nonlocal]\nmode=dot\nsub_sample=0\n",
    "[nonlocal]\nmode=concat\n",
    "[cc]\n",
    "[sk]\ngroups=4\nstride=2\nmin_dim=4\n",
    "[splat]\nfilters=8\ngroups=2\n",
    "[splat]\nfilters=8\nradix=1\n",
    "[gam]\n",
    "[ca]\n",
    "[simam]\n",
    "[triplet]\n",
    "[triplet]\nno_spatial=1\n",
    "[fan]\nheads=4\n",
]


@pytest.mark.parametrize("body", VARIANTS)
def test_gradients_reach_every_parameter_and_the_input(body):
    model, _, x = randomized(body, c=16, h=6, w=6)
    model.train()
    x.requires_grad_(True)
    out = model(x)
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(5))).sum().backward()
    dead = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"no gradient reaches {dead}"
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("body", VARIANTS)
def test_traced_network_matches(body):
    model, _, x = randomized("[convolutional]\nfilters=16\nsize=3\npad=1\nactivation=leaky\n" + body, c=4, h=6, w=6)
    with torch.no_grad():
        traced = torch.jit.trace(model, x, check_trace=False)
    other = torch.randn_like(x)
    with torch.no_grad():
        torch.testing.assert_close(traced(other), model(other))


# ---------------------------------------------------------------- bflops


@pytest.mark.parametrize(
    "body",
    [
        "[nonlocal]\n",
        "[nonlocal]\nmode=gaussian\nsub_sample=0\n",
        "[nonlocal]\nmode=dot\n",
        "[nonlocal]\nmode=concat\n",
        "[nonlocal]\nmode=concat\nsub_sample=0\n",
        "[cc]\nrecurrence=3\n",
        "[fan]\nheads=2\nmlp_ratio=3\n",
    ],
)
def test_bflops_count_the_attention_products(body):
    model = build(body, c=16, h=6, w=5)
    layer = model.spec.layers[0]
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(1, 16, 6, 5))
    assert layer.section.bflops(list(layer.input_shapes), layer.shape) * 1e9 == pytest.approx(counter.get_total_flops())


# ---------------------------------------------------------------- errors


BAD = [
    ("[se]\nreduction=4\ngate=hard\n", "gate", "not one of"),
    ("[se]\nactivation=sigmoid\n", "activation", "not one of"),
    ("[se]\nreduction=0\n", "reduction", "greater than 0"),
    ("[cbam]\nreduction=4\nkernel_size=5\n", "kernel_size", "3 or 7"),
    ("[cbam]\nkernelsize=4\n", "kernelsize", "3 or 7"),
    ("[cbam]\nreduction=8\nratio=8\n", "ratio", "not both"),
    ("[cbam]\nkernelsize=3\nratio=2\nkernel_size=3\n", "kernelsize", "not both"),
    ("[bam]\nreduction=4\ndilation=0\n", "dilation", "greater than 0"),
    ("[scse]\nreduction=-2\n", "reduction", "greater than 0"),
    ("[eca]\nk_size=4\n", "k_size", "odd"),
    ("[gc]\nratio=0.5\nfusion=add,sum\n", "fusion", "not one of"),
    ("[gc]\nfusion=add,add\n", "fusion", "repeat"),
    ("[gc]\npooling=max\n", "pooling", "not one of"),
    ("[nonlocal]\nmode=softmax\n", "mode", "not one of"),
    ("[cc]\nrecurrence=0\n", "recurrence", "greater than 0"),
    ("[sk]\nfilters=8\ngroups=3\n", "groups", "must divide"),
    ("[splat]\nfilters=8\nradix=3\n", "radix", "must divide"),
    ("[splat]\nfilters=9\ngroups=2\n", "groups", "must divide"),
    ("[gam]\nrate=0\n", "rate", "greater than 0"),
    ("[ca]\nreduction=x\n", "reduction", "integer"),
    ("[simam]\nlambda=0\n", "lambda", "greater than 0"),
    ("[triplet]\nno_spatial=1\nkernel_size=4\n", "kernel_size", "odd"),
    ("[fan]\nmlp_ratio=2\nheads=3\n", "heads", "must divide"),
]


@pytest.mark.parametrize(("body", "key", "words"), BAD, ids=[f"{b.split(']')[0][1:]}-{k}" for b, k, _ in BAD])
def test_bad_value_is_reported_at_its_line(body, key, words):
    text = cfg("[convolutional]\nfilters=8\nsize=1\n" + body, c=8)
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.parse(text)
    (item,) = exc.value.items
    lines = text.splitlines()
    assert item.key == key and item.layer == 1 and words in item.message
    assert lines[item.line - 1].startswith(f"{key}=")


@pytest.mark.parametrize(
    ("body", "h", "w", "words"),
    [
        ("[nonlocal]\n", 1, 6, "max-pools by 2"),
        ("[simam]\n", 1, 1, "two pixels"),
        ("[splat]\nsize=3\n", 6, 6, "required"),
    ],
)
def test_impossible_input_is_reported_at_the_section(body, h, w, words):
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.parse(cfg(body, h=h, w=w))
    (item,) = exc.value.items
    assert item.line == 5 and words in item.message
