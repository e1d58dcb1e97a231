"""Plain-Python transcriptions of darknet's training crop (the build without OpenCV), the reference
for `netcfg.train.crop`: data.c load_data_detection's window, image.c crop_image and resize_image,
data.c correct_boxes and fill_truth_detection's filters. C's float arithmetic is numpy.float32 and
its float → int conversions truncate toward zero, as int() does."""

from __future__ import annotations

import numpy as np

F = np.float32


def rand_precalc_random(lo, hi, random_part):
    lo, hi = F(lo), F(hi)
    if hi < lo:
        lo, hi = hi, lo
    return (F(random_part) * (hi - lo)) + lo


def detection_window(ow, oh, w, h, jitter, resize, letter_box, r1, r2, r3, r4, resize_r1, resize_r2):
    """load_data_detection's pleft, ptop, swidth, sheight."""
    jitter, resize = F(jitter), F(resize)
    dw = int(F(ow) * jitter)
    dh = int(F(oh) * jitter)
    resize_down, resize_up = resize, resize
    if resize_down > 1.0:
        resize_down = F(1) / resize_down
    min_rdw = int(F(ow) * (F(1) - (F(1) / resize_down)) / F(2))
    min_rdh = int(F(oh) * (F(1) - (F(1) / resize_down)) / F(2))
    if resize_up < 1.0:
        resize_up = F(1) / resize_up
    max_rdw = int(F(ow) * (F(1) - (F(1) / resize_up)) / F(2))
    max_rdh = int(F(oh) * (F(1) - (F(1) / resize_up)) / F(2))
    pleft = int(rand_precalc_random(-dw, dw, r1))
    pright = int(rand_precalc_random(-dw, dw, r2))
    ptop = int(rand_precalc_random(-dh, dh, r3))
    pbot = int(rand_precalc_random(-dh, dh, r4))
    if resize < 1:
        pleft = int(F(pleft) + rand_precalc_random(min_rdw, 0, resize_r1))
        pright = int(F(pright) + rand_precalc_random(min_rdw, 0, resize_r2))
        ptop = int(F(ptop) + rand_precalc_random(min_rdh, 0, resize_r1))
        pbot = int(F(pbot) + rand_precalc_random(min_rdh, 0, resize_r2))
    else:
        pleft = int(F(pleft) + rand_precalc_random(min_rdw, max_rdw, resize_r1))
        pright = int(F(pright) + rand_precalc_random(min_rdw, max_rdw, resize_r2))
        ptop = int(F(ptop) + rand_precalc_random(min_rdh, max_rdh, resize_r1))
        pbot = int(F(pbot) + rand_precalc_random(min_rdh, max_rdh, resize_r2))
    if letter_box:
        img_ar = F(ow) / F(oh)
        net_ar = F(w) / F(h)
        result_ar = img_ar / net_ar
        if result_ar > 1:
            oh_tmp = F(ow) / net_ar
            delta_h = (oh_tmp - F(oh)) / F(2)
            ptop = int(F(ptop) - delta_h)
            pbot = int(F(pbot) - delta_h)
        else:
            ow_tmp = F(oh) * net_ar
            delta_w = (ow_tmp - F(ow)) / F(2)
            pleft = int(F(pleft) - delta_w)
            pright = int(F(pright) - delta_w)
    swidth = ow - pleft - pright
    sheight = oh - ptop - pbot
    return pleft, ptop, swidth, sheight


def crop_image(im, dx, dy, w, h):
    """im: [c][h][w] nested lists."""
    c, ih, iw = len(im), len(im[0]), len(im[0][0])
    out = [[[0.0] * w for _ in range(h)] for _ in range(c)]
    for k in range(c):
        for j in range(h):
            for i in range(w):
                r = min(max(j + dy, 0), ih - 1)
                col = min(max(i + dx, 0), iw - 1)
                out[k][j][i] = im[k][r][col]
    return out


def resize_image(im, w, h):
    c, ih, iw = len(im), len(im[0]), len(im[0][0])
    if iw == w and ih == h:
        return [[row[:] for row in plane] for plane in im]
    part = [[[0.0] * w for _ in range(ih)] for _ in range(c)]
    w_scale = F(iw - 1) / F(w - 1) if w > 1 else F(0)
    h_scale = F(ih - 1) / F(h - 1) if h > 1 else F(0)
    for k in range(c):
        for r in range(ih):
            for col in range(w):
                if col == w - 1 or iw == 1:
                    val = F(im[k][r][iw - 1])
                else:
                    sx = F(col) * w_scale
                    ix = int(sx)
                    dx = sx - F(ix)
                    val = (F(1) - dx) * F(im[k][r][ix]) + dx * F(im[k][r][ix + 1])
                part[k][r][col] = val
    out = [[[0.0] * w for _ in range(h)] for _ in range(c)]
    for k in range(c):
        for r in range(h):
            sy = F(r) * h_scale
            iy = int(sy)
            dy = sy - F(iy)
            for col in range(w):
                out[k][r][col] = (F(1) - dy) * part[k][iy][col]
            if r == h - 1 or ih == 1:
                continue
            for col in range(w):
                out[k][r][col] += dy * part[k][iy + 1][col]
    return out


def fill_truth(rows, pleft, ptop, swidth, sheight, ow, oh, flip, net_w, net_h, num_boxes):
    """correct_boxes then fill_truth_detection's kept rows (class, x, y, w, h), boxes in given order."""
    sx = F(swidth) / F(ow)
    sy = F(sheight) / F(oh)
    dx = (F(pleft) / F(ow)) / sx
    dy = (F(ptop) / F(oh)) / sy
    csx, csy = F(1.0 / float(sx)), F(1.0 / float(sy))
    boxes = []
    for cls, x, y, w, h in rows:
        x, y, w, h = F(x), F(y), F(w), F(h)
        left, right, top, bottom = x - w / F(2), x + w / F(2), y - h / F(2), y + h / F(2)
        if x == 0 and y == 0:
            boxes.append(None)
            continue
        if (x + w / F(2)) < 0 or (y + h / F(2)) < 0 or (x - w / F(2)) > 1 or (y - h / F(2)) > 1:
            boxes.append(None)
            continue
        left, right = left * csx - dx, right * csx - dx
        top, bottom = top * csy - dy, bottom * csy - dy
        if flip:
            left, right = F(1) - right, F(1) - left
        left, right = min(max(left, F(0)), F(1)), min(max(right, F(0)), F(1))
        top, bottom = min(max(top, F(0)), F(1)), min(max(bottom, F(0)), F(1))
        bx, by = (left + right) / F(2), (top + bottom) / F(2)
        bw, bh = min(max(right - left, F(0)), F(1)), min(max(bottom - top, F(0)), F(1))
        boxes.append((cls, bx, by, bw, bh))
    lowest_w, lowest_h = F(1) / F(net_w), F(1) / F(net_h)
    kept = []
    for box in boxes[:num_boxes]:
        if box is None:
            continue
        cls, x, y, w, h = box
        if w < lowest_w or h < lowest_h:
            continue
        if x <= 0 or x > 1 or y <= 0 or y > 1:
            continue
        kept.append([cls, float(x), float(y), float(w), float(h)])
    return kept
