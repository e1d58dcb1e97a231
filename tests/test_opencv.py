"""Small cfgs written here against OpenCV's darknet importer (`opencvkit`), and the differences
`opencv_differences` skips for being real."""

import numpy as np
import pytest
import torch
from opencvkit import compare_with_opencv, cv2, opencv_differences, randomize

import netcfg

# ---------------------------------------------------------------- small cfgs written here

NET = "[net]\nwidth={w}\nheight={h}\nchannels=3\n"


def conv(filters: int, size: int = 3, stride: int = 1, bn: bool = True, act: str = "leaky", **keys) -> str:
    extra = "".join(f"{k}={v}\n" for k, v in keys.items())
    pad = "pad=1\n" if "padding" not in keys else ""
    return (
        f"[convolutional]\nfilters={filters}\nsize={size}\nstride={stride}\n{pad}"
        f"batch_normalize={int(bn)}\nactivation={act}\n{extra}"
    )


YOLO = "[yolo]\nmask={mask}\nanchors=10,13, 16,30, 33,23, 30,61, 62,45, 59,119\nclasses=3\nnum=6\n{extra}"

SMALL_CFGS = {
    "conv-pool-route-shortcut-upsample-yolo": NET.format(w=64, h=48)
    + conv(8)
    + "[maxpool]\nsize=2\nstride=2\n"
    + conv(16, groups=4, act="mish")
    + conv(16, size=1, act="swish")
    + "[shortcut]\nfrom=-2\nactivation=leaky\n"
    + conv(24, stride=2, act="relu", padding=1)
    + "[maxpool]\nsize=2\nstride=1\n"
    + "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n"
    + conv(12, size=1, bn=False, act="tanh")
    + "[maxpool]\nsize=5\nstride=1\n"
    + "[route]\nlayers=-1,-3\n"
    + conv(24, size=1, bn=False, act="linear")
    + YOLO.format(mask="3,4,5", extra="")
    + "[route]\nlayers=-4\n"
    + "[upsample]\nstride=2\n"
    + "[route]\nlayers=-1,4\n"
    + conv(8, size=1, act="logistic")
    + conv(24, size=1, bn=False, act="linear")
    + YOLO.format(mask="0,1,2", extra="scale_x_y=1.1\n"),
    "yolo-new-coords": NET.format(w=32, h=32)
    + conv(8, stride=2)
    + conv(16, size=1, bn=False, act="logistic")
    + "[yolo]\nmask=0,1\nanchors=10,13, 16,30\nclasses=3\nnum=2\nscale_x_y=2.0\nnew_coords=1\n",
    "shortcut-channel-mismatch": NET.format(w=16, h=16)
    + conv(8)
    + conv(4, size=1)
    + "[shortcut]\nfrom=-2\n"
    + conv(12, size=1)
    + "[shortcut]\nfrom=-2\nactivation=logistic\n",
    "reorg-region": NET.format(w=32, h=32)
    + conv(8)
    + "[maxpool]\nsize=2\nstride=2\n"
    + conv(16)
    + "[reorg]\nstride=2\n"
    + "[route]\nlayers=-1\n"
    + conv(16, size=1, bn=False, act="linear")
    + "[region]\nanchors=1,1.5, 2,1\nbias_match=1\nclasses=3\ncoords=4\nnum=2\nsoftmax=1\nthresh=.2\n",
    "classifier": NET.format(w=16, h=16)
    + conv(8)
    + "[maxpool]\nsize=3\nstride=2\npadding=1\n"
    + "[dropout]\nprobability=.5\n"
    + conv(16, act="linear", padding=2, size=5)
    + "[avgpool]\n"
    + "[connected]\noutput=12\nactivation=leaky\n"
    + "[connected]\noutput=5\nactivation=linear\n"
    + "[softmax]\ngroups=1\n",
    "squeeze-excite-sam": NET.format(w=16, h=16)
    + conv(8)
    + "[avgpool]\n"
    + conv(8, size=1, bn=False, act="logistic")
    + "[scale_channels]\nfrom=-3\n"
    + conv(8, size=1, act="logistic")
    + "[sam]\nfrom=-2\n",
}


@pytest.mark.parametrize("name", SMALL_CFGS)
def test_small_cfg_matches_opencv(name, tmp_path):
    compare_with_opencv(SMALL_CFGS[name], tmp_path)


@pytest.mark.parametrize(
    ("cfg", "reason"),
    [
        (conv(8, dilation=2), "dilation"),
        (conv(8, stride_x=2, stride_y=1), "stride_x"),
        (conv(8) + conv(8) + "[shortcut]\nfrom=-2\nweights_type=per_feature\n", "weights_type"),
        (conv(8) + "[upsample]\nstride=2\nscale=0.5\n", "scale"),
        (conv(8) + conv(8) + "[route]\nlayers=-1,-2\ngroups=2\n", "slices only the first input"),
        (conv(8) + "[connected]\noutput=4\nbatch_normalize=1\n", "NaN"),
        ("[crop]\ncrop_height=12\ncrop_width=12\n" + conv(8), "noadjust"),
    ],
    ids=["dilation", "stride_xy", "shortcut-weights", "upsample-scale", "route-groups", "connected-bn", "crop"],
)
def test_known_opencv_differences_are_real(cfg, reason, tmp_path):
    """Each rule in `opencv_differences` marks something OpenCV really computes differently."""
    text = NET.format(w=16, h=16) + cfg
    model = netcfg.build(text)
    assert reason in (opencv_differences(model.spec) or "")
    randomize(model, 0)
    netcfg.save_darknet_weights(model, tmp_path / "w.weights")
    (tmp_path / "net.cfg").write_text(text)
    net = cv2.dnn.readNetFromDarknet(str(tmp_path / "net.cfg"), str(tmp_path / "w.weights"))
    x = np.random.default_rng(1).uniform(0, 1, (1, 3, 16, 16)).astype(np.float32)
    net.setInput(x)
    try:
        theirs = net.forward()
    except cv2.error:
        return  # OpenCV cannot even run it: different indeed
    with torch.no_grad():
        ours = model(torch.from_numpy(x)).numpy()
    same = ours.size == theirs.size and (np.abs(ours.reshape(theirs.shape) - theirs) <= 0.01).all()
    assert not same
