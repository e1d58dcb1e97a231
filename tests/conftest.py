"""Shared fixtures: the shared darknet cfg folder (skipped when absent) and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

SHARED_CFGS = Path(__file__).resolve().parents[1].parent / "shared" / "darknet-cfg"

torch.set_num_threads(1)

#: Hypothesis profiles: `ci` (the default) is bounded and reproducible; `NETCFG_HYPOTHESIS_PROFILE=long`
#: runs a longer campaign by hand.
settings.register_profile(
    "ci", max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("long", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("NETCFG_HYPOTHESIS_PROFILE", "ci"))


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
