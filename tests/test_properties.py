"""Property-based tests: random cfgs drawn from the registry's own field declarations.

For every registered section type, key values are drawn inside its pydantic ranges (`gt/ge/lt/le`,
`Literal` choices, flags, lists), layer references point at earlier layers (mostly ones whose
height×width fits), and single-input sections usually get an adapter convolution giving them a
channel count their own `infer` accepts. A drawn cfg may be refused with `netcfg.CfgError`; any
other exception is a bug. A cfg that validates must build and run, every layer's output must have
the shape its spec promises, `fuse()` must keep float64 and the eval-mode outputs, and the module
`to_python` writes must equal `build`'s.

Budgets come from the hypothesis profile (`tests/conftest.py`): `ci` by default (bounded,
derandomized), `NETCFG_HYPOTHESIS_PROFILE=long` for a longer hunt. Failures print the drawn cfg.
"""

from __future__ import annotations

import copy
import types
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types as at
import pytest
import torch
from hypothesis import given, note, reject, settings
from hypothesis import strategies as st
from pydantic.fields import FieldInfo
from torch import nn

import netcfg
from netcfg.registry import SectionType, lookup, section_types
from netcfg.section import Context, Section, SpecError
from netcfg.sections.darknet import Convolutional
from netcfg.values import PREVIOUS, Shape

MAX_SIDE = 24
MAX_FILTERS = 16
#: Keys whose values are channel counts: drawn up to MAX_FILTERS, other integers stay below 6.
CHANNEL_KEYS = ("filters", "output", "out_", "reduce_", "pool_proj", "min_dim")
LAYER_TYPES = [t for t in section_types() if t.name != "net"]
HEAD_TYPES = [t for t in LAYER_TYPES if t.model.is_output]
CONV_TYPES = [t for t in LAYER_TYPES if issubclass(t.model, Convolutional)]
VARIANT_TYPES = [t for t in CONV_TYPES if t.model is not Convolutional]


def share(fraction: float) -> settings:
    """The loaded profile's example budget scaled for one of many parametrized cases."""
    return settings(max_examples=max(2, int(settings.default.max_examples * fraction)))


# ---------------------------------------------------------------- drawing values from fields


BOUNDS = {at.Gt: "gt", at.Ge: "ge", at.Lt: "lt", at.Le: "le", at.MinLen: "min_length", at.MaxLen: "max_length"}


def _bounds(info: FieldInfo) -> dict[str, Any]:
    """The field's declared `gt/ge/lt/le` and length limits."""
    return {BOUNDS[type(m)]: getattr(m, BOUNDS[type(m)]) for m in info.metadata if type(m) in BOUNDS}


def _is_refs(info: FieldInfo) -> bool:
    """Layer references (`Refs`): a tuple of indices or labels."""
    return get_origin(info.annotation) is tuple and get_args(info.annotation)[0] == int | str


def _int_range(key: str, bounds: dict[str, Any]) -> tuple[int, int]:
    cap = MAX_FILTERS if any(key.startswith(k) for k in CHANNEL_KEYS) else 5
    lo = bounds["ge"] if "ge" in bounds else bounds["gt"] + 1 if "gt" in bounds else -1
    hi = bounds["le"] if "le" in bounds else bounds["lt"] - 1 if "lt" in bounds else max(lo, 0) + cap
    return lo, min(hi, max(lo, 0) + cap)


def _float_values(bounds: dict[str, Any]) -> st.SearchStrategy[float]:
    lo = bounds.get("ge", bounds.get("gt", -1.0))
    hi = bounds.get("le", bounds.get("lt", lo + 4 if lo > -1 else 2.0))
    eighths = st.integers(int(lo * 8), int(hi * 8)).map(lambda k: k / 8)
    return eighths.filter(lambda v: v > bounds.get("gt", -2) and v < bounds.get("lt", hi + 1))


def _list_text(items: st.SearchStrategy, bounds: dict[str, Any]) -> st.SearchStrategy[str]:
    lo, hi = bounds.get("min_length", 1), bounds.get("max_length", 4)
    return st.lists(items, min_size=lo, max_size=min(hi, lo + 3)).map(lambda v: ",".join(map(str, v)))


def value_text(key: str, annotation: Any, bounds: dict[str, Any]) -> st.SearchStrategy[str] | None:
    """Cfg text for one key of this annotation within its bounds; None for keys never drawn."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) in (types.UnionType, Union) and len(args) == 1:
        return value_text(key, args[0], bounds)
    if get_origin(annotation) is Literal:
        return st.sampled_from([str(a) for a in get_args(annotation)])
    if annotation is bool:
        return st.sampled_from(["0", "1"])
    if annotation is int:
        return st.integers(*_int_range(key, bounds)).map(str)
    if annotation is float:
        return _float_values(bounds).map(str)
    if get_origin(annotation) is tuple and get_args(annotation)[-1] is Ellipsis:
        item = get_args(annotation)[0]
        if get_origin(item) is Literal:
            return st.lists(st.sampled_from(get_args(item)), min_size=1, max_size=2, unique=True).map(",".join)
        if item is float:
            return _list_text(st.integers(4, 64).map(lambda k: k / 4), {"min_length": 0, "max_length": 8})
        if item is int:
            return _list_text(st.integers(0, 3) if key == "mask" else st.integers(1, 7), bounds)
    return None


def ref_text(index: int, shapes: list[Shape], previous: Shape) -> st.SearchStrategy[str]:
    """One reference from layer `index`: relative or absolute, mostly to a layer of the previous one's
    height×width; relative `-(index + 1)` names the network input."""
    fitting = [j for j in range(index) if shapes[j][1:] == previous[1:]]
    target = st.sampled_from(fitting) if fitting and index else st.integers(-1, max(index - 1, -1))
    target = st.one_of(target, target, target, st.integers(-1, max(index - 1, -1)))
    return st.tuples(target, st.booleans()).map(lambda t: str(t[0]) if t[1] and t[0] >= 0 else str(t[0] - index))


@st.composite
def section_text(draw, entry: SectionType, index: int, shapes: list[Shape], previous: Shape) -> str:
    """`[type]` with each key drawn (optional ones sometimes left at their default)."""
    lines = [f"[{draw(st.sampled_from([entry.name, *entry.aliases]))}]"]
    for name, info in entry.model.model_fields.items():
        key = info.alias or name
        if not info.is_required() and draw(st.booleans()):
            continue
        bounds = _bounds(info)
        if _is_refs(info):
            size = bounds.get("min_length", 1), min(bounds.get("max_length", 3), 3)
            refs = st.lists(ref_text(index, shapes, previous), min_size=size[0], max_size=size[1])
            lines.append(f"{key}={','.join(draw(refs))}")
            continue
        text = value_text(key, info.annotation, bounds)
        if text is not None:
            lines.append(f"{key}={draw(text)}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- drawing networks


@st.composite
def net_text(draw, square: bool = False) -> str:
    h = draw(st.integers(4, MAX_SIDE))
    w = h if square else draw(st.integers(4, MAX_SIDE))
    return f"[net]\nwidth={w}\nheight={h}\nchannels={draw(st.integers(1, 3))}\n"


@st.composite
def plain_layer(draw) -> str:
    """A cheap layer that always validates: a padded convolution or a max pool."""
    stride = draw(st.integers(1, 2))
    if draw(st.booleans()):
        return f"[maxpool]\nsize={draw(st.integers(2, 3))}\nstride={stride}\n"
    filters, size, bn = draw(st.integers(1, MAX_FILTERS)), draw(st.sampled_from([1, 3])), draw(st.integers(0, 1))
    act = draw(st.sampled_from(["leaky", "linear", "mish", "logistic"]))
    keys = f"filters={filters}\nsize={size}\nstride={stride}\npad=1\nbatch_normalize={bn}\nactivation={act}\n"
    return f"[convolutional]\n{keys}"


def shapes_of(cfg: str) -> list[Shape]:
    """Layer shapes of a cfg known to validate ([] when it has no layers yet)."""
    return [layer.shape for layer in netcfg.parse(cfg).layers] if "\n[" in cfg.split("\n", 1)[1] else []


def accepted_channels(section: str, shape: Shape, cfg: str) -> list[int]:
    """Channel counts (≤ 160) the section's own `infer` accepts after a layer of `shape`'s size."""
    entry = lookup(section.split("]")[0][1:])
    options = dict(line.split("=", 1) for line in section.splitlines()[1:])
    fields = {f.alias or n for n, f in entry.model.model_fields.items()}
    try:
        model: Section = entry.model.model_validate({k: v for k, v in options.items() if k in fields})
        net = netcfg.parse(cfg + "[empty]\n").net
    except (ValueError, netcfg.CfgError):
        return []
    if model.inputs() != [PREVIOUS]:
        return []
    accepted = []
    for c in range(1, 161):
        try:
            model.infer([(c, shape[1], shape[2])], Context(0, net, [(c, shape[1], shape[2])]))
            accepted.append(c)
        except SpecError:
            pass
    return accepted


@st.composite
def network_with(draw, entry: SectionType) -> str:
    """A few plain layers, the section under test (often after a channel adapter), maybe a reader."""
    cfg = draw(net_text()) + "".join(draw(st.lists(plain_layer(), max_size=2)))
    shapes = shapes_of(cfg)
    net = netcfg.parse(cfg + "[empty]\n").net
    previous = shapes[-1] if shapes else (net.channels, net.height, net.width)
    section = draw(section_text(entry, len(shapes), shapes, previous))
    fits = accepted_channels(section, previous, cfg)
    if fits and (previous[0] not in fits or draw(st.booleans())):
        cfg += f"[convolutional]\nfilters={draw(st.sampled_from(fits[:24]))}\nsize=1\nactivation=leaky\n"
        if entry.model.inputs is Section.inputs:
            cfg += section
        else:
            cfg += draw(section_text(entry, len(shapes) + 1, [*shapes, previous], previous))
    else:
        cfg += section
    if draw(st.booleans()):
        cfg += draw(st.sampled_from(["[convolutional]\nfilters=3\nsize=3\npad=1\n", "[route]\nlayers=-1\n"]))
    return cfg


@st.composite
def heads_network(draw) -> str:
    """A head mid-network: its output read by a later conv or route, then a second head at the end."""
    cfg = draw(net_text()) + "".join(draw(st.lists(plain_layer(), min_size=1, max_size=2)))
    for _ in range(2):
        try:
            shape = shapes_of(cfg)[-1]
        except netcfg.CfgError:
            reject()  # a cross-field rule the schema cannot show (e.g. [detection] coords=4) refused the head
        head = draw(section_text(draw(st.sampled_from(HEAD_TYPES)), 0, [], shape))
        fits = accepted_channels(head, shape, cfg) or [1]
        cfg += f"[convolutional]\nfilters={draw(st.sampled_from(fits[:4]))}\nsize=1\nactivation=linear\n{head}"
        reader = ["[convolutional]\nfilters=6\nsize=3\npad=1\n", "[route]\nlayers=-1,-2\n", "[route]\nlayers=-3\n"]
        cfg += draw(st.sampled_from(reader))
    return cfg


@st.composite
def example_blocks(draw) -> str:
    """Registered examples (composite blocks with their own references) chained after plain layers."""
    cfg = draw(net_text(square=draw(st.booleans()))) + draw(plain_layer())
    for entry in draw(st.lists(st.sampled_from(LAYER_TYPES), min_size=1, max_size=3)):
        cfg += entry.model.example
    return cfg


@st.composite
def conv_geometry(draw, entry: SectionType) -> str:
    """A `[convolutional]`-keyed section with drawn dilation, strides, groups and padding, non-square input."""
    h, w = draw(st.integers(4, MAX_SIDE)), draw(st.integers(4, MAX_SIDE))
    groups = draw(st.integers(1, 4))
    c = groups * draw(st.integers(1, 3))
    keys = {
        "filters": groups * draw(st.integers(1, 4)),
        "size": draw(st.integers(1, 5)),
        "stride": draw(st.integers(1, 3)),
        "stride_x": draw(st.integers(-1, 3)),
        "stride_y": draw(st.integers(-1, 3)),
        "dilation": draw(st.integers(1, 3)),
        "groups": groups,
        "batch_normalize": draw(st.integers(0, 1)),
        "activation": draw(st.sampled_from(["leaky", "linear", "swish"])),
    }
    keys.update({"pad": 1} if draw(st.booleans()) else {"padding": draw(st.integers(0, 3))})
    body = "".join(f"{k}={v}\n" for k, v in keys.items())
    return f"[net]\nwidth={w}\nheight={h}\nchannels={c}\n[{entry.name}]\n{body}[convolutional]\nfilters=2\nsize=1\n"


# ---------------------------------------------------------------- the properties


def randomized(model: netcfg.Network) -> netcfg.Network:
    """float64, every parameter perturbed (zero-initialised branches come alive), varied BN statistics."""
    torch.manual_seed(0)
    model.double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
        for bn in (m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)):
            bn.running_mean.normal_(0, 0.2)
            bn.running_var.uniform_(0.5, 1.5)
    return model.eval()


def as_list(out: Any) -> list[torch.Tensor]:
    return list(out) if isinstance(out, (list, tuple)) else [out]


def assert_same(expected: list[torch.Tensor], actual: list[torch.Tensor], tol: float, what: str) -> None:
    assert len(expected) == len(actual), what
    for i, (e, a) in enumerate(zip(expected, actual)):
        assert e.shape == a.shape, f"{what} output {i}: shape {tuple(a.shape)} != {tuple(e.shape)}"
        scale = max(1.0, e.nan_to_num().abs().max().item())
        torch.testing.assert_close(a, e, rtol=0, atol=tol * scale, equal_nan=True, msg=f"{what} output {i}")


def generated_model(cfg: str) -> nn.Module:
    """The class `netcfg.to_python(cfg)` writes, executed into a fresh module and instantiated."""
    module = types.ModuleType("netcfg_generated")
    exec(compile(netcfg.to_python(cfg, class_name="Generated"), "<generated>", "exec"), module.__dict__)
    return module.Generated()


def check_cfg(cfg: str) -> None:
    """Validates → builds, runs with the promised shapes, fuses to the same outputs, converts equal."""
    note(f"cfg:\n{cfg}")
    try:
        spec = netcfg.parse(cfg)
    except netcfg.CfgError:
        return
    model = randomized(netcfg.build(spec))
    c, h, w = spec.input_shape
    x = torch.randn(2, c, h, w, dtype=torch.float64)
    n = len(spec.layers)
    with torch.no_grad():
        outs = model.reset_state()(x, return_layers=list(range(n)))
        default = as_list(model.reset_state()(x))
    for i, layer in enumerate(spec.layers):
        got = tuple(outs[i].shape[1:])
        assert got == layer.shape, f"layer {i} [{layer.section.type_name}]: output {got}, spec {layer.shape}"
    generated = generated_model(cfg).double().eval()
    generated.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert_same(default, as_list(generated(x)), 1e-12, "to_python")  # a fresh module: no state carried
    fused = copy.deepcopy(model).fuse()
    dtypes = {t.dtype for t in [*fused.parameters(), *fused.buffers()] if t.is_floating_point()}
    assert dtypes <= {torch.float64}, f"fuse() changed float64 parameters to {dtypes}"
    with torch.no_grad():
        fused_outs = fused.reset_state()(x, return_layers=list(range(n)))
    assert_same([outs[i] for i in range(n)], [fused_outs[i] for i in range(n)], 1e-9, "fuse()")


@pytest.mark.parametrize("entry", LAYER_TYPES, ids=lambda t: t.name)
def test_every_section_type_with_drawn_keys(entry: SectionType) -> None:
    @share(0.15)
    @given(network_with(entry))
    def check(cfg: str) -> None:
        check_cfg(cfg)

    check()


@share(1.0)
@given(heads_network())
def test_heads_mid_network(cfg: str) -> None:
    check_cfg(cfg)


@share(1.0)
@given(example_blocks())
def test_chained_example_blocks(cfg: str) -> None:
    check_cfg(cfg)


@pytest.mark.parametrize("entry", CONV_TYPES, ids=lambda t: t.name)
def test_convolution_geometry_on_non_square_inputs(entry: SectionType) -> None:
    @share(0.5)
    @given(conv_geometry(entry))
    def check(cfg: str) -> None:
        check_cfg(cfg)

    check()


@pytest.mark.parametrize("flag", ["cbn", "binary", "xnor"])
@pytest.mark.parametrize("entry", VARIANT_TYPES, ids=lambda t: t.name)
def test_convolution_variants_honour_or_refuse_flags(entry: SectionType, flag: str) -> None:
    """`cbn=1` builds what `batch_normalize=1` builds; `binary=1`/`xnor=1` change the output. A
    variant may instead refuse the flag with a CfgError, never silently ignore it."""
    base = "[net]\nwidth=9\nheight=7\nchannels=4\n[{}]\nfilters=4\nsize=3\npad=1\nactivation=leaky\n{}"
    try:
        flagged = netcfg.build(base.format(entry.name, f"{flag}=1\n"))
    except netcfg.CfgError:
        return
    if flag == "cbn":
        expected = netcfg.build(base.format(entry.name, "batch_normalize=1\n"))
        assert flagged.state_dict().keys() == expected.state_dict().keys(), f"[{entry.name}] ignores cbn=1"
        return
    plain = randomized(netcfg.build(base.format(entry.name, "")))
    randomized(flagged).load_state_dict(plain.state_dict())
    x = torch.randn(1, 4, 7, 9, dtype=torch.float64)
    with torch.no_grad():
        assert not torch.allclose(flagged(x), plain(x)), f"[{entry.name}] ignores {flag}=1"
