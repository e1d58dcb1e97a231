"""netcfg.classify and `netcfg predict` against darknet's `classifier predict`: the input made by the
transcribed resize_min + crop_image, the probabilities by OpenCV's darknet importer on the same weights."""

from __future__ import annotations

import darknet_detect as dn
import numpy as np
import pytest
from opencvkit import calibrate_batch_norm, opencv_net, randomize, sample_images, with_net_size
from PIL import Image
from test_detect import opencv_copy
from test_opencv import SMALL_CFGS

import netcfg
from netcfg.cli import main

cv2 = pytest.importorskip("cv2")


@pytest.fixture
def classifier(tmp_path):
    """The small [softmax] classifier of test_opencv at a non-square input, with seeded weights."""
    cfg = tmp_path / "classifier.cfg"
    cfg.write_text(with_net_size(SMALL_CFGS["classifier"], 20, 12))
    model = netcfg.build(cfg)
    randomize(model, 11)
    calibrate_batch_norm(model, sample_images(model.spec, 12))
    netcfg.save_darknet_weights(model, tmp_path / "classifier.weights")
    return cfg, tmp_path / "classifier.weights"


def test_top_classes_match_opencv_on_darknets_crop(classifier, tmp_path):
    cfg, weights = classifier
    model = netcfg.build(cfg, weights)
    net = opencv_net(cfg, opencv_copy(model, weights, tmp_path))
    pictures = [dn.scene(60, 30, 1), dn.scene(25, 70, 2), dn.scene(20, 12, 3)]
    found = netcfg.classify(model, pictures, top=3, names=list("abcde"))
    for picture, best in zip(pictures, found):
        net.setInput(dn.classifier_input(dn.chw(picture), 20, 12)[None])
        probabilities = net.forward().reshape(-1)
        order = np.argsort(-probabilities)[:3]
        assert [p.class_id for p in best] == order.tolist()
        assert [p.class_name for p in best] == ["abcde"[k] for k in order]
        assert np.allclose([p.probability for p in best], probabilities[order], atol=1e-5)
    spread = {tuple(p.class_id for p in best) for best in found}
    assert len(spread) > 1 or found[0][0].probability < 0.99, "the classifier ignores its input"


def test_predict_prints_the_top_classes(classifier, tmp_path, capsys):
    cfg, weights = classifier
    images = []
    for n, size in enumerate([(60, 30), (25, 70)]):
        images.append(tmp_path / f"{n}.png")
        Image.fromarray(dn.scene(*size, seed=n)).save(images[-1])
    assert main(["predict", str(cfg), str(weights), *map(str, images), "--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    expected = netcfg.classify(netcfg.build(cfg, weights), images, top=2)
    assert lines[0] == f"{images[0]}:" and lines[3] == f"{images[1]}:" and len(lines) == 6
    name, value = lines[1].split(": ")
    assert name.strip() == expected[0][0].class_name and float(value) == pytest.approx(expected[0][0].probability)
    assert main(["predict", str(cfg), str(weights), str(images[0]), "--top", "0"]) == 1
