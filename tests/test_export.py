"""`netcfg.export_onnx` and `netcfg export`: dynamic batch and image size that really run in
onnxruntime, fusing, the parity report, and clear errors for bad input or a missing extra."""

import importlib.util

import onnx
import onnxruntime
import pytest
import torch
from exportcheck import seeded

import netcfg
from netcfg.cli import main
from netcfg.export.parity import Parity, compare

TINY = """[net]
width=32
height=32
channels=3
[convolutional]
filters=8
size=3
stride=2
pad=1
batch_normalize=1
activation=leaky
[convolutional]
filters=14
size=1
activation=linear
[yolo]
mask=0,1
anchors=4,5, 8,9
num=2
classes=2
"""


def test_a_dynamic_export_runs_at_another_batch_and_size(tmp_path):
    model = seeded(netcfg.build(TINY))
    result = netcfg.export_onnx(model, tmp_path / "tiny.onnx", dynamic=True)
    assert result.dynamic_axes == (0, 2, 3)
    assert [p.input_shape for p in result.parity] == [(1, 3, 32, 32), (2, 3, 64, 96)]
    for parity in result.parity:
        assert parity.within(1e-4, 1e-4), parity
    session = onnxruntime.InferenceSession(str(tmp_path / "tiny.onnx"), providers=["CPUExecutionProvider"])
    x = torch.rand(3, 3, 48, 80)
    (got,) = session.run(None, {"images": x.numpy()})
    with torch.no_grad():
        (want,) = model(x)
    torch.testing.assert_close(torch.from_numpy(got), want, rtol=1e-4, atol=1e-4)


def test_cli_exports_fused_and_prints_the_parity(tmp_path, capsys):
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY)
    out = tmp_path / "fused.onnx"
    assert main(["export", str(cfg), "--fuse", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out} (outputs: layer2; dynamic axes: none)" in printed
    assert "onnxruntime vs torch at 1×3×32×32: max abs error" in printed
    graph = onnx.load(str(out)).graph
    assert not [n for n in graph.node if n.op_type == "BatchNormalization"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["export", "no-such.cfg"], "no-such.cfg"),
        (["export", "yolov3-tiny", "--weights", "missing.weights"], "missing.weights"),
        (["export", "vgg16", "--nms"], "no detection head"),
    ],
)
def test_cli_bad_input_is_a_clear_error(argv, message, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_cli_refuses_a_threshold_outside_0_1(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["export", "yolov3-tiny", "--nms", "--thresh", "1.5"])
    assert exc.value.code == 2
    assert "'1.5' is not a number in [0, 1]" in capsys.readouterr().err


def test_a_missing_extra_names_the_install_command(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    with pytest.raises(netcfg.NetcfgError, match=r"exporting needs onnxscript: pip install 'netcfg\[export\]'"):
        netcfg.export_onnx(netcfg.build(TINY))
    assert main(["export", "yolov3-tiny"]) == 1
    assert "pip install 'netcfg[export]'" in capsys.readouterr().err


def test_parity_measures_abs_and_rel_error_and_shape_mismatches():
    import numpy as np

    want = [np.array([1.0, -2.0, 1e-9]), np.zeros((2, 3))]
    got = [np.array([1.001, -2.0, 0.0]), np.zeros((2, 3))]
    parity = compare((1, 3, 8, 8), want, got)
    assert parity.max_abs == pytest.approx(1e-3)
    assert parity.max_rel == pytest.approx(1e-3)  # the 1e-9 entry is below the relative floor
    assert parity.within(2e-3, 2e-3) and not parity.within(1e-4, 1)
    bad = compare((1, 3, 8, 8), want, [got[0], np.zeros((3, 2))])
    assert not bad.within(1, 1) and "output 1 is (3, 2)" in str(bad)
    assert isinstance(bad, Parity)


def test_cli_fails_when_onnxruntime_disagrees(tmp_path, monkeypatch, capsys):
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY)
    monkeypatch.setattr("netcfg.export.onnx.compare", lambda shape, *_: Parity(shape, 0.5, 0.5))
    assert main(["export", str(cfg), "-o", str(tmp_path / "tiny.onnx")]) == 1
    assert "onnxruntime disagrees with torch beyond abs 0.001 and rel 0.01" in capsys.readouterr().err
