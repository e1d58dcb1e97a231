"""Bad darknet sections give a CfgError on the right line naming the values involved."""

import pytest

import netcfg

NET = "[net]\nwidth=16\nheight=16\nchannels=4\n"  # lines 1-4; the first layer's header is line 5


def errors(body: str) -> list[netcfg.CfgItem]:
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.parse(NET + body)
    return exc.value.items


def only_error(body: str) -> netcfg.CfgItem:
    (item,) = errors(body)
    return item


def test_unknown_activation_names_line_and_suggests():
    item = only_error("[convolutional]\nfilters=2\nactivation=leakyy\n")
    assert (item.line, item.key, item.section, item.layer) == (7, "activation", "convolutional", 0)
    assert "did you mean 'leaky'" in item.message
    assert ":7:" in str(item)


def test_yolo_filters_mismatch_names_both_numbers():
    item = only_error("[convolutional]\nfilters=20\n[yolo]\nmask=0,1\nnum=3\nclasses=4\nanchors=1,2,3,4,5,6\n")
    assert (item.line, item.key, item.section) == (10, "classes", "yolo")
    assert "20" in item.message and "18" in item.message


def test_region_and_gaussian_filters_mismatch_name_both_numbers():
    region = only_error("[convolutional]\nfilters=20\n[region]\nnum=2\nclasses=4\n")
    assert region.line == 9 and "20" in region.message and "num·(classes+coords+1) = 2·9 = 18" in region.message
    gaussian = only_error("[convolutional]\nfilters=12\n[Gaussian_yolo]\nmask=0\nnum=1\nclasses=2\n")
    assert gaussian.line == 10 and "12" in gaussian.message and "11" in gaussian.message


def test_route_height_width_mismatch_names_both_shapes():
    body = "[convolutional]\nfilters=2\n[maxpool]\nsize=2\nstride=2\n[route]\nlayers=-1,-2\n"
    item = only_error(body)
    assert (item.line, item.key) == (11, "layers")
    assert "2×8×8" in item.message and "2×16×16" in item.message


def test_route_groups_must_divide_channels():
    item = only_error("[convolutional]\nfilters=3\n[route]\nlayers=-1\ngroups=2\n")
    assert (item.line, item.key) == (9, "groups") and "3" in item.message and "groups=2" in item.message


def test_shortcut_height_width_mismatch_names_both_shapes():
    body = "[convolutional]\nfilters=4\n[convolutional]\nfilters=4\nsize=3\nstride=2\npad=1\n[shortcut]\nfrom=-2\n"
    item = only_error(body)
    assert (item.line, item.key) == (13, "from")
    assert "4×16×16" in item.message and "4×8×8" in item.message


@pytest.mark.parametrize(
    "body, line, key, words",
    [
        ("[convolutional]\nfilters=6\ngroups=4\n", 7, "groups", ["groups=4", "4", "6"]),
        ("[reorg]\nstride=4\n", 6, "stride", ["16", "4×16×16"]),
        ("[reorg3d]\nstride=3\n", 6, "stride", ["stride=3", "4×16×16"]),
        ("[upsample]\nstride=-3\n", 6, "stride", ["stride=-3", "4×16×16"]),
        ("[upsample]\nstride=0\n", 6, "stride", ["0"]),
        ("[softmax]\ngroups=3\n", 6, "groups", ["groups=3", "1024"]),
        ("[crop]\ncrop_height=20\ncrop_width=8\n", 6, "crop_height", ["20×8", "4×16×16"]),
        ("[maxpool]\nmaxpool_depth=1\nout_channels=5\n", 7, "out_channels", ["5", "4"]),
        ("[lrn]\nsize=9\n", 6, "size", ["size=9", "4×16×16"]),
        ("[region]\ncoords=5\nnum=1\nclasses=0\n", 6, "coords", ["coords=5"]),
        ("[convolutional]\nshare_index=-1\n", 6, "share_index", ["share_index"]),
        ("[softmax]\ntree=data/9k.tree\n", 6, "tree", ["tree"]),
        ("[shortcut]\nfrom=-1\nweights_type=per_pixel\n", 7, "weights_type", ["per_pixel", "per_channel"]),
        ("[dropout]\nprobability=1.5\n", 6, "probability", ["1"]),
        ("[yolo]\nmask=0,3\nnum=3\nclasses=1\n", 6, "mask", ["mask index 3", "num=3"]),
    ],
)
def test_impossible_values_name_the_key_line_and_values(body, line, key, words):
    item = only_error(body)
    assert (item.line, item.key) == (line, key), str(item)
    for word in words:
        assert word in item.message, (word, item.message)


def test_scale_channels_and_sam_shape_mismatches_name_both_shapes():
    scale = only_error("[convolutional]\nfilters=3\n[avgpool]\n[convolutional]\nfilters=5\n[scale_channels]\nfrom=-3\n")
    assert scale.line == 11 and "5×1×1" in scale.message and "3×16×16" in scale.message
    sam = only_error("[convolutional]\nfilters=3\n[convolutional]\nfilters=4\n[sam]\nfrom=-2\n")
    assert sam.line == 10 and "3×16×16" in sam.message and "4×16×16" in sam.message


def test_refused_sections_are_named():
    item = only_error("[deconvolutional]\nfilters=4\n")
    assert item.section == "deconvolutional" and "refused" in item.message and item.line == 5


def test_all_problems_are_reported_together():
    items = errors("[convolutional]\nactivation=mishh\n[maxpool]\nsize=0\n[avgpool]\n[upsample]\nstride=-3\n")
    assert [(i.line, i.key) for i in items] == [(6, "activation"), (8, "size")]
