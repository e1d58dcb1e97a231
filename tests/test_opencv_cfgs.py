"""The shared darknet cfgs (../shared/darknet-cfg) and the bundled cfgs, rewritten as plain darknet,
against OpenCV's darknet importer (`opencvkit`)."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
import torch
from conftest import SHARED_CFGS
from darknet_plain import NotPlain, plain_darknet
from opencvkit import calibrate_batch_norm, compare_with_opencv, randomize, sample_images, with_net_size

import netcfg
from netcfg.resources import bundled_cfgs
from netcfg.spec import Spec

SHARED_SIZE = 128


# ---------------------------------------------------------------- cfg text


def without_trailing_cost(text: str) -> str:
    """Drop trailing `[cost]` sections: training-only loss layers that do not change the output."""
    sections = re.split(r"(?m)^(?=[ \t]*\[)", text.replace("\r\n", "\n"))
    while len(sections) > 1 and re.match(r"[ \t]*\[[ \t]*cost[ \t]*\]", sections[-1]):
        sections.pop()
    return "".join(sections)


# ---------------------------------------------------------------- the shared darknet cfgs

SHARED_NAMES = sorted(p.name for p in SHARED_CFGS.glob("*.cfg")) if SHARED_CFGS.is_dir() else []


@functools.cache
def shared_text(name: str) -> str:
    """The shared cfg at a small input size (its own when smaller, at least its `[crop]` size),
    without `[cost]`."""
    raw = (SHARED_CFGS / name).read_text(encoding="utf-8", errors="replace")
    crops = [int(v) for v in re.findall(r"(?m)^[ \t]*crop_(?:height|width)[ \t]*=[ \t]*(\d+)", raw)]
    own = [int(v) for v in re.findall(r"(?m)^[ \t]*(?:height|width)[ \t]*=[ \t]*(\d+)", raw)[:2]]
    size = max([min([SHARED_SIZE, *own]), *crops])
    return without_trailing_cost(with_net_size(raw, size, size))


@functools.cache
def shared_spec(name: str) -> Spec | netcfg.CfgError:
    try:
        return netcfg.parse(shared_text(name))
    except netcfg.CfgError as exc:
        return exc


def inference_key(spec: Spec) -> tuple:
    """What determines a network's outputs: every layer's type, settings and inputs."""
    return spec.input_shape, tuple(
        (layer.section.type_name, repr(layer.section.model_dump()), layer.sources) for layer in spec.layers
    )


def refused_on_purpose(error: netcfg.CfgError) -> bool:
    """Sections netcfg refuses by design, and shortcuts darknet itself aborts on (resnet*.cfg)."""
    return all("is refused" in item.message or "height×width differ" in item.message for item in error.items)


def same_network_earlier(spec: Spec, earlier: list[tuple[str, Spec | netcfg.CfgError]]) -> str | None:
    """The first of `earlier` that is the same network at inference, if any."""
    key = inference_key(spec)
    return next((name for name, other in earlier if isinstance(other, Spec) and inference_key(other) == key), None)


def check_against_opencv(spec: Spec | netcfg.CfgError, text: str, earlier: list, tmp_path: Path) -> None:
    if isinstance(spec, netcfg.CfgError):
        if refused_on_purpose(spec):
            pytest.skip(f"netcfg refuses it: {spec.items[0]}")
        raise spec
    duplicate = same_network_earlier(spec, earlier)
    if duplicate:
        pytest.skip(f"the same network at inference as {duplicate}")
    compare_with_opencv(text, tmp_path)


@pytest.mark.parametrize("name", SHARED_NAMES or ["(none)"])
def test_shared_cfg_matches_opencv(name, shared_cfgs, tmp_path):
    earlier = [(n, shared_spec(n)) for n in SHARED_NAMES[: SHARED_NAMES.index(name)]]
    check_against_opencv(shared_spec(name), shared_text(name), earlier, tmp_path)


def bundled_text(name: str) -> str:
    """The bundled cfg at SHARED_SIZE, or at its own size when smaller (the single-block cfgs)."""
    text = bundled_cfgs()[name].read_text(encoding="utf-8")
    _, height, width = netcfg.parse(text).input_shape
    return without_trailing_cost(with_net_size(text, min(width, SHARED_SIZE), min(height, SHARED_SIZE)))


def plain_bundled(name: str) -> tuple[Spec, str, dict[str, str]] | str:
    """(spec, its plain-darknet text, weight key map), or why OpenCV cannot judge this bundled cfg."""
    spec = netcfg.parse(bundled_text(name))
    shared = [(f"../shared/darknet-cfg/{n}", shared_spec(n)) for n in SHARED_NAMES]
    if duplicate := same_network_earlier(spec, shared):
        return f"judged as {duplicate}"
    try:
        text, keys = plain_darknet(spec, list(netcfg.build(spec).state_dict()))
    except NotPlain as exc:
        return str(exc)
    return spec, text, keys


PLAIN = {name: plain_bundled(name) for name in sorted(bundled_cfgs())}
JUDGED = [name for name, plain in PLAIN.items() if not isinstance(plain, str)]


def assert_same_network(spec: Spec, text: str, keys: dict[str, str]) -> None:
    """The bundled network with the plain network's random weights gives the plain network's outputs."""
    plain = netcfg.build(text)
    randomize(plain, 0)
    calibrate_batch_norm(plain, sample_images(spec, 1))
    model = netcfg.build(spec)
    state = plain.state_dict()
    model.load_state_dict({key: state[keys[key]] for key in model.state_dict()})
    x = torch.from_numpy(sample_images(spec, 2))
    with torch.no_grad():
        ours, theirs = model(x), plain(x)
    for a, b in zip(ours if isinstance(ours, list) else [ours], theirs if isinstance(theirs, list) else [theirs]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * float(b.abs().max()))


@pytest.mark.parametrize("name", JUDGED)
def test_bundled_cfg_matches_opencv(name, tmp_path):
    """Bundled cfgs rewritten with darknet's sections only (`darknet_plain`): equal to the bundled
    network in netcfg, then judged by OpenCV."""
    spec, text, keys = PLAIN[name]
    assert_same_network(spec, text, keys)
    compare_with_opencv(text, tmp_path)


def test_unjudged_bundled_cfgs_are_few_and_explained():
    """Only cfgs with a section darknet cannot express, or judged as a shared cfg, stay out."""
    reasons = {name: plain for name, plain in PLAIN.items() if isinstance(plain, str)}
    assert all("no exact darknet equivalent" in r or r.startswith("judged as") for r in reasons.values()), reasons
    assert len(JUDGED) >= 6, reasons
