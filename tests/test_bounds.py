"""Value extremes for every key of every registered section, read from the schemas themselves: integers
beyond int32 and non-finite floats are CfgErrors located at the key, never another exception."""

import typing

import pytest

import netcfg
from netcfg.registry import section_types
from netcfg.section import EXAMPLE_NET

EXTREMES = {int: ["9223372036854775808", "-2147483649"], float: ["inf", "-inf", "nan", "1e999"]}


def _number_kind(annotation: object) -> type | None:
    """int or float when the field holds such numbers (alone, optional, or in a tuple), else None."""
    if annotation in (int, float):
        return annotation
    for arg in typing.get_args(annotation):
        kind = _number_kind(arg)
        if kind is not None:
            return kind
    return None


def _cases():
    for entry in section_types():
        for name, field in entry.model.model_fields.items():
            kind = _number_kind(field.annotation)
            if kind is bool or kind is None:
                continue
            for value in EXTREMES[kind]:
                yield pytest.param(
                    entry.name, field.alias or name, value, id=f"{entry.name}-{field.alias or name}-{value}"
                )


@pytest.mark.parametrize(("section", "key", "value"), list(_cases()))
def test_extreme_values_are_located_errors(section, key, value):
    header = "" if section in ("net", "network") else EXAMPLE_NET
    text = header + f"[{section}]\n{key}={value}\n"
    if section in ("net", "network"):
        text += "width=8\nheight=8\n" if key not in ("width", "height") else ""
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.parse(text)
    located = [item for item in exc.value.items if item.key == key]
    assert located, exc.value
    assert all(item.line > 0 and item.column > 0 for item in located)


def test_the_bounds_are_int32_and_finite():
    with pytest.raises(netcfg.CfgError, match="at most 2147483647 in magnitude"):
        netcfg.parse(EXAMPLE_NET + "[convolutional]\nfilters=2147483648\n")
    assert netcfg.parse(EXAMPLE_NET + "[upsample]\nscale=1e30\n").layers[0].section.scale == 1e30


@pytest.mark.parametrize(
    "section",
    [
        "[sk]\nbranches=2147483647\n",
        "[cc]\nrecurrence=2147483647\n",
        "[bam]\ndilation_convs=2147483647\n",
        "[odconv]\nfilters=8\nkernel_num=2147483647\n",
        "[splat]\nfilters=8\nradix=2147483647\n",
        "[mixconv]\nfilters=8\nsizes=" + ",".join(["3"] * 3000) + "\n",
        "[yolo]\nnum=2147483647\n",
    ],
    ids=lambda s: s.split("]")[0][1:],
)
def test_keys_that_count_submodules_are_bounded_before_anything_is_built(section):
    """Each would loop over that many submodules (or anchors) while building: refused at parse, at once."""
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.parse(EXAMPLE_NET + section)
    assert any("less than or equal" in item.message or "at most" in item.message for item in exc.value.items)
