"""The generated section reference: docs/sections.md is current and covers every key."""

from pathlib import Path

import pytest
from pydantic import Field

from netcfg import Section, register
from netcfg.reference import REGENERATE, builtin_types, key_docs, listing, markdown
from netcfg.registry import lookup

DOCS = Path(__file__).parents[1] / "docs" / "sections.md"


def test_committed_reference_is_current():
    assert DOCS.read_text(encoding="utf-8") == markdown(), f"docs/sections.md is stale; run: {REGENERATE}"


def test_every_builtin_section_and_key_is_documented():
    text = markdown()
    for entry in builtin_types():
        assert f"### `[{entry.name}]`" in text
        for alias in entry.aliases:
            assert f"`[{alias}]`" in text
        for doc in key_docs(entry):
            assert f"| `{doc.key}` |" in text


def _doc(section: str, key: str):
    return next(d for d in key_docs(lookup(section)) if d.key == key)


@pytest.mark.parametrize(
    ("section", "key", "type_", "default", "constraints"),
    [
        ("convolutional", "filters", "int", "1", "> 0"),
        ("convolutional", "pad", "0/1", "0", ""),
        ("convolutional", "activation", "activation", "logistic", ""),
        ("convolutional", "antialiasing", "int", "0", ">= 0, <= 2"),
        ("shortcut", "from", "layer list", "required", "at least 1 item(s)"),
        ("shortcut", "weights_type", "one of none, per_feature, per_layer, per_channel", "none", ""),
        ("maxpool", "size", "int", "unset", "> 0"),
        ("yolo", "anchors", "float list", "empty", ""),
        ("yolo", "mask", "int list", "unset", ""),
        ("net", "width", "int", "required", "> 0"),
    ],
)
def test_key_types_defaults_and_constraints(section, key, type_, default, constraints):
    doc = _doc(section, key)
    assert (doc.type, doc.default, doc.constraints) == (type_, default, constraints)


def test_user_sections_are_listed_but_not_in_the_builtin_reference(scratch_registry):
    @register("reference_test_block", family="mine")
    class Block(Section):
        """A user block."""

        gain: float = Field(2.0, description="output = gain·x | 0")

    assert "[reference_test_block]" in listing() and "gain=2" in listing()
    assert "reference_test_block" not in markdown()
    own = markdown([lookup("reference_test_block")])
    assert "| key | type | default | constraints | meaning |" in own
    assert "| `gain` | float | 2 |  | output = gain·x \\| 0 |" in own
