"""Pair-cascade solve curves on fit samples, from the joint histogram of where the draws' costs fall on the grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from modelarb.core.grid import log_position

Array = NDArray[np.float64]


class _CapPosition(NamedTuple):
    """Where caps fall on the grid: segment j and fraction t in log b; `whole`: caps that buy nothing.

    A draw whose cost has c grid budgets below it fails at the cap with weight 1 if
    c >= j + 2, 1 − t if c = j + 1, else 0 (its pass curve read linearly in log b).
    """

    j: NDArray[np.int64]
    t: Array
    whole: NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class SampleCascades:
    """Pair cascades (rows of `caps`, K x 2) on fit samples: the grid reads all samples share, done once.

    A fast path for `core.grid.cascade_curves` on a sample's per-draw pass curves 1[cost <= b]:
    `curves(costs)` gives the same numbers (to 1e-12; tests/test_robust.py::
    test_histogram_fit_curves_equal_cascade_curves_on_per_draw_pass_curves checks it on random
    samples and caps) from the joint histogram of the draws' "counts" (how many grid budgets lie
    below each of a draw's two costs; a draw fails at exactly those grid points). Per sample:
    O(draws · log G + G² + K·G), no per-draw curves and no matrix products.
    """

    budgets: Array
    caps: Array
    _first: _CapPosition = field(init=False, repr=False)
    _second: _CapPosition = field(init=False, repr=False)
    _read: tuple[NDArray[np.int64], Array, NDArray[np.bool_]] = field(init=False, repr=False)
    _stage: NDArray[np.int64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        first, second = self.caps[:, 0], self.caps[:, 1]
        object.__setattr__(self, "_first", _cap_position(self.budgets, first))
        object.__setattr__(self, "_second", _cap_position(self.budgets, second))
        x = self.budgets[None, :] - first[:, None]  # stage 2's own budget at each global budget
        j, t = log_position(self.budgets, x)
        object.__setattr__(self, "_read", (j, t, x < self.budgets[0]))
        in_first = self.budgets[None, :] <= first[:, None]
        in_second = self.budgets[None, :] <= (first + second)[:, None]
        object.__setattr__(self, "_stage", np.where(in_first, 0, np.where(in_second, 1, 2)))

    def curves(self, costs: Array) -> tuple[Array, Array]:
        """Solve curves of the two providers (2, G) and of the cascades (K, G) on a fit sample (draws, 2)."""
        width = len(self.budgets) + 1
        counts = np.searchsorted(self.budgets, costs, side="left")
        cells = np.bincount(counts[:, 0] * width + counts[:, 1], minlength=width * width)
        joint = cells.reshape(width, width) / len(costs)
        single_fail = _fail_curves(np.stack([joint.sum(axis=1), joint.sum(axis=0)]))
        # unsolved after stage 1, by stage-2 count: rows of `joint` weighted by stage 1's failure at its cap
        j, t, whole = self._first
        tail = np.vstack([np.cumsum(joint[::-1], axis=0)[::-1], np.zeros((1, width))])  # tail[c]: mass of counts >= c
        carried = np.where(whole[:, None], tail[0], tail[j + 2] + (1.0 - t)[:, None] * joint[j + 1])
        stage2 = _fail_curves(carried)  # stage 2's failure curve given stage 1, at its own budget
        left = carried.sum(axis=1)
        j2, t2, whole2 = self._second
        rows = np.arange(len(self.caps))
        final = np.where(whole2, left, stage2[rows, j2 + 1] + (1.0 - t2) * carried[rows, j2 + 1])
        rj, rt, below = self._read
        lo, hi = np.take_along_axis(stage2, rj, axis=1), np.take_along_axis(stage2, rj + 1, axis=1)
        read = np.where(below, left[:, None], lo + rt * (hi - lo))
        failure = np.where(self._stage == 0, single_fail[0], np.where(self._stage == 1, read, final[:, None]))
        return 1.0 - single_fail, 1.0 - failure


def _fail_curves(mass: Array) -> Array:
    """Failure curves (..., G) from mass (..., G + 1) by count: at grid point g, the mass of counts > g."""
    return np.cumsum(mass[..., ::-1], axis=-1)[..., ::-1][..., 1:]


def _cap_position(budgets: Array, caps: Array) -> _CapPosition:
    j, t = log_position(budgets, caps)
    return _CapPosition(j, t, (caps <= 0) | (caps < budgets[0]))
