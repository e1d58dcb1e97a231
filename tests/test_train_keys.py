"""The training keys are validated fields with darknet's parser.c defaults, not kept strings."""

from __future__ import annotations

import pytest

import netcfg

NET = "[net]\nwidth=16\nheight=16\nchannels=3\n"
HEAD = (
    "[convolutional]\nfilters=21\nsize=1\nactivation=linear\n"
    "[yolo]\nmask=0,1,2\nanchors=4,5, 8,9, 12,10\nnum=3\nclasses=2\n"
)


def _sections(cfg: str):
    spec = netcfg.parse(cfg)
    return spec.net, spec.layers[-1].section


def test_defaults_are_parser_c_defaults():
    net, yolo = _sections(NET + HEAD)
    assert (net.batch, net.subdivisions, net.learning_rate, net.momentum, net.decay) == (1, 1, 0.001, 0.9, 0.0001)
    assert (net.burn_in, net.power, net.policy, net.max_batches) == (0, 4.0, "constant", 0)
    assert (net.hue, net.saturation, net.exposure, net.flip) == (0.0, 1.0, 1.0, True)
    assert (yolo.ignore_thresh, yolo.truth_thresh, yolo.iou_thresh, yolo.iou_loss) == (0.5, 1.0, 1.0, "mse")
    assert (yolo.iou_normalizer, yolo.obj_normalizer, yolo.cls_normalizer, yolo.max_delta) == (0.75, 1, 1, None)
    assert (yolo.jitter, yolo.max_boxes, yolo.extras) == (0.2, 200, {})


def test_keys_are_read_as_numbers_and_lists():
    cfg = NET.replace("[net]\n", "[net]\nbatch=64\nsubdivisions=8\npolicy=steps\nsteps=-1,100,200\nscales=.1,10,.1\n")
    net, yolo = _sections(cfg + HEAD + "iou_loss=ciou\nmax_delta=5\nmax=90\nnew_coords=1\n")
    assert (net.mini_batch, net.steps, net.scales) == (8, (-1, 100, 200), (0.1, 10.0, 0.1))
    assert (yolo.iou_loss, yolo.max_delta, yolo.max_boxes, yolo.new_coords) == ("ciou", 5.0, 90, True)


@pytest.mark.parametrize(
    ("net", "head", "key", "message"),
    [
        ("policy=stepz\n", "", "policy", "is not one of"),
        ("policy=steps\nsteps=10,20\n", "", None, "policy=steps needs steps= and scales="),
        ("policy=steps\nsteps=10,20\nscales=.1\n", "", None, "scales= only 1"),
        ("batch=2\nsubdivisions=4\n", "", None, "smaller than subdivisions=4"),
        ("momentum=-1\n", "", "momentum", "greater than or equal to 0"),
        ("", "iou_loss=xiou\n", "iou_loss", "is not one of"),
        ("", "counters_per_class=1,2,3\n", None, "3 values for classes=2"),
    ],
)
def test_bad_training_keys_are_located_errors(net, head, key, message):
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.parse(NET.replace("[net]\n", "[net]\n" + net) + HEAD + head)
    (item,) = exc.value.items
    assert message in item.message and (key is None or item.key == key)


def test_region_keys():
    cfg = NET + (
        "[convolutional]\nfilters=21\nsize=1\nactivation=linear\n[region]\nanchors=1,1, 2,2, 3,3\nclasses=2\n"
        "num=3\nobject_scale=5\nnoobject_scale=1\nclass_scale=1\ncoord_scale=1\nrescore=1\nbias_match=1\nthresh=.6\n"
    )
    _, region = _sections(cfg)
    assert (region.object_scale, region.rescore, region.bias_match, region.thresh) == (5.0, True, True, 0.6)


def test_gaussian_yolo_keeps_focal_loss_as_darknet_does_not_read_it():
    """parse_gaussian_yolo has no focal_loss: netcfg keeps it as written, with a note, and no field."""
    head = HEAD.replace("filters=21", "filters=33").replace("[yolo]", "[Gaussian_yolo]") + "focal_loss=1\n"
    with pytest.warns(netcfg.CfgWarning, match="focal_loss: darknet does not read it for \\[Gaussian_yolo\\]"):
        _, gaussian = _sections(NET + head)
    assert dict(gaussian.extras) == {"focal_loss": "1"} and not hasattr(gaussian, "focal_loss")
