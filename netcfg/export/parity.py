"""How close onnxruntime's outputs are to torch's: max absolute and max relative error."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

#: Relative error is measured where |torch| is at least this fraction of the output's largest value:
#: near zero it says nothing about the export.
REL_FLOOR = 1e-3


@dataclass(frozen=True)
class Parity:
    """Errors of onnxruntime against torch at one input shape; `mismatch` names outputs whose shapes
    differ (their errors count as infinite)."""

    input_shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    mismatch: str = ""

    def __str__(self) -> str:
        shape = "×".join(map(str, self.input_shape))
        if self.mismatch:
            return f"onnxruntime vs torch at {shape}: {self.mismatch}"
        return f"onnxruntime vs torch at {shape}: max abs error {self.max_abs:.3g}, max rel error {self.max_rel:.3g}"

    def within(self, atol: float, rtol: float) -> bool:
        """Whether both errors are within the given tolerances."""
        return not self.mismatch and self.max_abs <= atol and self.max_rel <= rtol


def compare(
    shape: tuple[int, ...], want: Sequence[np.ndarray], got: Sequence[np.ndarray], unordered: bool = False
) -> Parity:
    """The Parity of outputs `got` (onnxruntime) against `want` (torch), output by output; with
    `unordered` the rows of each (a table of detections: batch first, class last) are compared in
    whichever order matches."""
    import numpy as np

    if unordered:
        got = [matched_rows(w, g, (0, w.shape[-1] - 1)) if w.ndim == 2 else g for w, g in zip(want, got)]

    if len(want) != len(got):
        return Parity(shape, math.inf, math.inf, f"{len(got)} outputs, torch gives {len(want)}")
    pairs = enumerate(zip(want, got))
    shapes = [f"output {k} is {g.shape}, torch's {w.shape}" for k, (w, g) in pairs if w.shape != g.shape]
    if shapes:
        return Parity(shape, math.inf, math.inf, "; ".join(shapes))
    errors = [_errors(np.asarray(w, np.float64), np.asarray(g, np.float64)) for w, g in zip(want, got)]
    return Parity(shape, max((e[0] for e in errors), default=0.0), max((e[1] for e in errors), default=0.0))


def _errors(want: np.ndarray, got: np.ndarray) -> tuple[float, float]:
    """(max abs, max rel) of one output; NaN where torch has a number counts as infinite."""
    import numpy as np

    if want.size == 0:
        return 0.0, 0.0
    diff = np.abs(got - want)
    diff = np.where(np.isnan(got) & np.isnan(want), 0.0, np.nan_to_num(diff, nan=math.inf))
    scale = np.abs(want)
    floor = REL_FLOOR * float(np.nanmax(scale)) if np.isfinite(scale).any() else 0.0
    significant = scale >= max(floor, np.finfo(np.float32).tiny)
    rel = float((diff[significant] / scale[significant]).max()) if significant.any() else 0.0
    return float(diff.max()), rel


def matched_rows(want: np.ndarray, got: np.ndarray, keys: tuple[int, ...] = (0, 6)) -> np.ndarray:
    """`got`'s rows reordered to pair each with its nearest row of `want` among the rows agreeing on
    the `keys` columns (a detection's batch and class): boxes of nearly equal score may come out of
    NMS in either order. `got` unchanged when no one-to-one pairing exists."""
    import numpy as np

    if want.ndim != 2 or want.shape != got.shape or len(want) == 0:
        return got
    order = np.empty(len(want), dtype=np.int64)
    for key in np.unique(want[:, keys], axis=0):
        mine = np.flatnonzero((want[:, keys] == key).all(axis=1))
        theirs = np.flatnonzero((got[:, keys] == key).all(axis=1))
        if len(mine) != len(theirs):
            return got
        distance = np.abs(want[mine, None, :].astype(np.float64) - got[None, theirs, :]).max(axis=-1)
        nearest = distance.argmin(axis=1)
        if len(set(nearest.tolist())) != len(nearest):
            return got
        order[mine] = theirs[nearest]
    return got[order]
