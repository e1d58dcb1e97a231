"""Window geometry: the output-size formulas of convolutions and pools, and darknet's padding split.

Every section states its kernel, strides, padding (in pixels), dilation and groups once, as a
`ConvGeometry`; shape inference, module arguments, BFLOPs and the summary all read that one value.
"""

from __future__ import annotations

from dataclasses import dataclass

from .values import Shape


def window_out_size(n: int, kernel: int, stride: int, before: int, after: int, dilation: int = 1) -> int:
    """Positions of a (dilated) window sliding over `n` padded pixels, as PyTorch computes them."""
    return (n + before + after - dilation * (kernel - 1) - 1) // stride + 1


def darknet_conv_out_size(n: int, kernel: int, stride: int, pad: int) -> int:
    """darknet's `convolutional_out_height/width`: `(n + 2·pad − size) / stride + 1`, dilation ignored."""
    return (n + 2 * pad - kernel) // stride + 1


def darknet_pad_split(total: int) -> tuple[int, int]:
    """(before, after) pixels of darknet's pool padding: `total // 2` left/top, the rest right/bottom.
    With it `window_out_size` is darknet's pool size `(n + padding − size) / stride + 1`."""
    return total // 2, total - total // 2


def same_out_size(n: int, stride: int) -> int:
    """Size after a 'same'-padded block (odd kernels, padding (k − 1)/2) at `stride`: ⌈n / stride⌉."""
    return (n - 1) // stride + 1


def same_output(shape: Shape, channels: int, stride: int) -> Shape:
    """(C, H, W) of a 'same'-padded block with `channels` outputs at `stride` in both directions."""
    _, h, w = shape
    return channels, same_out_size(h, stride), same_out_size(w, stride)


@dataclass(frozen=True)
class ConvGeometry:
    """A convolution's or pool's window: kernel (kh, kw), strides (sy, sx), padding (before, after)
    in pixels on both axes, dilation and groups."""

    kernel: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: int = 1
    groups: int = 1

    @classmethod
    def square(cls, size: int, stride: int = 1, padding: int = 0, dilation: int = 1, groups: int = 1) -> ConvGeometry:
        """A size×size window with the same stride and `padding` pixels on every side."""
        return cls((size, size), (stride, stride), (padding, padding), dilation, groups)

    def out_size(self, n: int, axis: int) -> int:
        """Output positions along `axis` (0: height, 1: width) for `n` input pixels."""
        return window_out_size(n, self.kernel[axis], self.strides[axis], *self.padding, self.dilation)

    def output(self, shape: Shape, channels: int) -> Shape:
        """Output (C, H, W) for an input (C, H, W), with `channels` output channels."""
        _, h, w = shape
        return channels, self.out_size(h, 0), self.out_size(w, 1)


def blur_geometry(antialiasing: int, strides: tuple[int, int], channels: int) -> ConvGeometry:
    """darknet's depthwise anti-aliasing blur at `strides`: 3×3 pad 1 (`antialiasing=1`) or 2×2 pad 0."""
    size, pad = (3, 1) if antialiasing == 1 else (2, 0)
    return ConvGeometry((size, size), strides, (pad, pad), groups=channels)
