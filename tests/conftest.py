"""Shared fixtures: the shared darknet cfg folder (skipped when absent) and small helpers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

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
