"""Mutated weights files (truncated, extended, header fields at their extremes including 1001, NaN, ±inf
and negative variances injected, random bytes, an empty file, a folder, a FIFO) give a WeightsError that
leaves the model untouched, or a load of finite values with non-negative variances; in a sandbox under a
time limit (a FIFO opened for reading would block forever) and a memory limit."""

from __future__ import annotations

import random
import struct

import pytest
from fuzzfixture import check, sandbox  # noqa: F401  (the fixture)
from fuzzweights import HEADER, VARIANCE, VERSIONS, mutated_file, valid_file
from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=2 * settings.default.max_examples)
@given(st.randoms(use_true_random=False))
def test_mutated_weights_load_or_give_weights_errors(sandbox, rng):  # noqa: F811
    check(sandbox, "weights", mutated_file(rng))


def test_the_valid_file_loads(sandbox):  # noqa: F811
    assert check(sandbox, "weights", ("valid", valid_file())).outcome == "loaded"


@pytest.mark.parametrize("kind", ["empty", "folder", "fifo"])
def test_special_files_are_weights_errors(sandbox, kind):  # noqa: F811
    assert check(sandbox, "weights", (kind, b"")).outcome == "WeightsError"


@pytest.mark.parametrize("field", range(3), ids=["major", "minor", "revision"])
@pytest.mark.parametrize("version", VERSIONS)
def test_every_header_version_field_extreme(sandbox, field, version):  # noqa: F811
    data = bytearray(valid_file())
    data[4 * field : 4 * field + 4] = struct.pack("<i", version)
    check(sandbox, "weights", ("header", bytes(data)))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, -1e-30])
def test_bad_variances_are_refused_and_leave_the_model_untouched(sandbox, value):  # noqa: F811
    data = bytearray(valid_file())
    at = HEADER + 4 * VARIANCE[random.Random(str(value)).randrange(len(VARIANCE))]
    data[at : at + 4] = struct.pack("<f", value)
    assert check(sandbox, "weights", ("variance", bytes(data))).outcome == "WeightsError"


@pytest.mark.parametrize("cut", [1, 4, 17])
def test_truncated_files_are_refused_and_leave_the_model_untouched(sandbox, cut):  # noqa: F811
    assert check(sandbox, "weights", ("truncate", valid_file()[:-cut])).outcome == "WeightsError"
