"""`parse` and `build` pause Python's cyclic garbage collector while they run (everything they make
stays alive, so its collections would only rescan it) and leave it as they found it, on errors too."""

import gc

import pytest

import netcfg


@pytest.mark.parametrize("enabled", [True, False])
def test_parse_and_build_pause_the_collector_and_restore_it(enabled, monkeypatch):
    seen = []
    real = netcfg.api.build_spec
    monkeypatch.setattr(netcfg.api, "build_spec", lambda *a: seen.append(gc.isenabled()) or real(*a))
    (gc.enable if enabled else gc.disable)()
    try:
        netcfg.build("[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=2\nsize=1\n")
        with pytest.raises(netcfg.CfgError):
            netcfg.parse("[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=-2\n")
        assert seen == [False, False] and gc.isenabled() is enabled
    finally:
        gc.enable()
