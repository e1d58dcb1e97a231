"""`netcfg detect` and `netcfg predict` end to end through `netcfg.cli.main`: drawn images, the table,
JSON lines that equal `netcfg.detect`, a progress bar for several images, and clear errors."""

from __future__ import annotations

import json

import darknet_detect as dn
import numpy as np
import pytest
import torch
from PIL import Image
from test_detect_units import TINY

import netcfg
from netcfg.cli import main


@pytest.fixture
def detector(tmp_path):
    """A tiny [yolo] cfg, seeded weights that detect plenty, and three pictures of different sizes."""
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY.format(net=""))
    model = netcfg.build(cfg)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
        model.layers[1].conv.bias.view(3, 7)[:, 4:] += 2
    netcfg.save_darknet_weights(model, tmp_path / "tiny.weights")
    images = []
    for n, size in enumerate([(64, 48), (40, 70), (50, 50)]):
        images.append(tmp_path / f"img{n}.png")
        Image.fromarray(dn.scene(*size, seed=n)).save(images[-1])
    return cfg, tmp_path / "tiny.weights", images


def test_detect_writes_drawn_images_and_json_lines_equal_to_the_api(detector, tmp_path, capsys):
    cfg, weights, images = detector
    out = tmp_path / "out"
    code = main(["detect", str(cfg), str(weights), *map(str, images), "-o", str(out), "--json", "--names", "voc"])
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = netcfg.detect(netcfg.build(cfg, weights), images, names="voc")
    assert [line["image"] for line in lines] == list(map(str, images))
    for line, found in zip(lines, expected):
        assert found and len(line["detections"]) == len(found)
        for row, d in zip(line["detections"], found):
            assert row["class_name"] == d.class_name == ["aeroplane", "bicycle"][d.class_id]
            assert row["box"] == pytest.approx(d.box, abs=0.01) and row["score"] == pytest.approx(d.score, abs=1e-6)
    for image in images:
        drawn, original = np.asarray(Image.open(out / image.name)), np.asarray(Image.open(image))
        assert drawn.shape == original.shape and (drawn != original).any(), "no box drawn"


def test_detect_prints_a_table_and_a_progress_bar(detector, tmp_path, capsys):
    cfg, weights, images = detector
    assert (
        main(["detect", str(cfg), str(weights), *map(str, images), "-o", str(tmp_path / "o"), "--thresh", "0.5"]) == 0
    )
    captured = capsys.readouterr()
    header, *rows = captured.out.splitlines()
    assert header.split() == ["image", "class", "score", "x1", "y1", "x2", "y2"]
    expected = netcfg.detect(netcfg.build(cfg, weights), images, thresh=0.5)
    assert len(rows) == sum(map(len, expected)) > 0
    assert rows[0].split()[:3] == [str(images[0]), "class", str(expected[0][0].class_id)]
    assert [line.split()[1] for line in captured.err.splitlines()] == ["1/3", "2/3", "3/3"]


def test_detect_reports_bad_and_missing_images_and_goes_on(detector, tmp_path, capsys):
    cfg, weights, images = detector
    (tmp_path / "bad.jpg").write_text("nope")
    argv = ["detect", str(cfg), str(weights), str(tmp_path / "bad.jpg"), "missing.jpg", str(images[0])]
    assert main([*argv, "-o", str(tmp_path / "o"), "--json"]) == 1
    captured = capsys.readouterr()
    assert "bad.jpg: not an image Pillow can read" in captured.err and "missing.jpg: no such image file" in captured.err
    assert "Traceback" not in captured.err
    assert [json.loads(line)["image"] for line in captured.out.splitlines()] == [str(images[0])]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["detect", "darknet53", "{weights}", "{image}"], "weights"),
        (["detect", "{classifier}", "{classifier_weights}", "{image}"], "no detection head"),
        (["detect", "{cfg}", "missing.weights", "{image}"], "missing.weights"),
        (["detect", "{cfg}", "{weights}", "{image}", "--names", "missing.names"], "cannot read the names file"),
        (["detect", "{cfg}", "{weights}", "{image}", "--nms", "2"], "--nms=2.0: must be between 0 and 1"),
        (["predict", "{cfg}", "{weights}", "{image}"], "a detection network"),
    ],
)
def test_errors_are_one_line_without_traceback(argv, message, detector, tmp_path, capsys, monkeypatch):
    cfg, weights, images = detector
    monkeypatch.chdir(tmp_path)
    classifier = tmp_path / "classifier.cfg"
    classifier.write_text("[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=2\nsize=1\n")
    netcfg.save_darknet_weights(netcfg.build(classifier), tmp_path / "classifier.weights")
    values = dict(
        cfg=cfg,
        weights=weights,
        image=images[0],
        classifier=classifier,
        classifier_weights=tmp_path / "classifier.weights",
    )
    assert main([a.format(**values) for a in argv]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
