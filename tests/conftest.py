"""Shared fixtures: the shared darknet cfg folder (skipped when absent) and small helpers.

Hypothesis profiles: `ci` (bounded, derandomized, no shrinking so a failure costs no extra time; loaded
by default) and `long` (many more examples, random seeds, shrunk failures); pick one with
`NETCFG_HYPOTHESIS_PROFILE=long`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, Phase, settings

_SLOW_DRAWS = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]
settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=_SLOW_DRAWS,
)
settings.register_profile("long", max_examples=1000, deadline=None, suppress_health_check=_SLOW_DRAWS)
settings.load_profile(os.environ.get("NETCFG_HYPOTHESIS_PROFILE", "ci"))

SHARED_CFGS = Path(__file__).resolve().parents[1].parent / "shared" / "darknet-cfg"

torch.set_num_threads(1)


@pytest.fixture
def shared_cfgs() -> Path:
    if not SHARED_CFGS.is_dir():
        pytest.skip("../shared/darknet-cfg is not present")
    return SHARED_CFGS


@pytest.fixture
def scratch_registry(monkeypatch):
    """Section types registered during the test are forgotten after it."""
    from netcfg import registry

    monkeypatch.setattr(registry, "_TYPES", dict(registry._TYPES))
    monkeypatch.setattr(registry, "_BY_NAME", dict(registry._BY_NAME))
