"""Value extremes for every key of every registered section, taken from the schemas themselves (ints at
0, −1, 2**31−1, 2**31, 2**63; floats inf, nan, −0.0, 1e308; empty, huge and junk lists; bad strings), set
in each section's own example and built and run: a valid network or a located CfgError, in a sandbox
under a time and memory limit. The campaign runs every combination; CI samples them."""

from __future__ import annotations

import pytest
from fuzzfixture import check, sandbox  # noqa: F401  (the fixture)
from fuzzkit import EXAMPLES, extremes, schema_keys, with_value
from hypothesis import given, settings
from hypothesis import strategies as st

import netcfg
from netcfg.budget import Budget
from netcfg.budget import check as check_budget
from netcfg.registry import section_types

CASES = [(section, key, value) for section, key, kind in schema_keys() for value in extremes(kind)]


def test_every_registered_section_with_fields_is_covered():
    covered = {section for section, _, _ in CASES}
    assert covered == {t.name for t in section_types() if t.model.model_fields and t.model.example}
    assert {"2147483648", "9223372036854775808", "inf", "nan", "-0.0", "1e308", ""} <= {v for _, _, v in CASES}


@settings(max_examples=3 * settings.default.max_examples)
@given(st.sampled_from(CASES))
def test_a_value_extreme_builds_and_runs_or_is_a_located_error(sandbox, case):  # noqa: F811
    section, key, value = case
    check(sandbox, "values", with_value(EXAMPLES[section], section, key, value))


FOUND = [
    ("implicit", "std", "1e308"),  # RuntimeError from torch's uniform_ (out of float32 range)
    ("implicit", "mean", "-1e308"),
    ("gc", "ratio", "1e308"),  # OverflowError: int(C · ratio)
    ("fan", "mlp_ratio", "1e308"),
    ("aspp", "rates", ",".join(["1"] * 3000)),  # 3,000 branches: minutes to build
    ("stn", "pool", "2147483647"),  # TypeError: pool² · filters overflows int64 on the meta device
]


@pytest.mark.parametrize(("section", "key", "value"), FOUND, ids=[f"{s}-{k}" for s, k, _ in FOUND])
def test_values_the_campaign_found_are_refused_at_their_key(sandbox, section, key, value):  # noqa: F811
    text = with_value(EXAMPLES[section], section, key, value)
    assert check(sandbox, "values", text).outcome == "CfgError"
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.parse(text)
    assert [item.key for item in exc.value.items] == [key]


def test_a_huge_dilation_is_refused_for_its_padded_input():
    """[acb] pads by dilation·(size // 2) pixels: 2**31−1 asked F.pad for 4·10**9 squared (found by fuzzing)."""
    spec = netcfg.parse(with_value(EXAMPLES["acb"], "acb", "dilation", "2147483647"))
    with pytest.raises(netcfg.CfgError) as exc:
        check_budget(spec, Budget())
    (item,) = exc.value.items
    assert item.section == "acb" and "its padded input" in item.message
