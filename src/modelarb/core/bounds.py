"""Lower bounds on what completing a cascade prefix can cost, and the target a branch and bound closes against
(METHOD §4).

A stage that buys k attempts of provider p on instance i, which the stages before left
unsolved with chance w, removes w · (1 − F(k)) of it for w · c · Σ_{j<k} F(j). Hazards grow
as attempts are drawn without replacement, so spend per solve chance removed is least
when every failure has been drawn: r_ip = c_ip (n + 1) / (s + 1) (∞ if s = 0). Whatever
stages follow, removing δ of the mean unsolved chance costs at least the cheapest
fractional filling L(δ) of the instances' remaining chances w_i at r_i = min over unused
providers of r_ip (a convex, piecewise linear curve), and δ is at most what the unused
providers with the most reach could remove, one per remaining stage.

How far S + L(δ) − H(R + δ) dips below 0 for a prefix (solve R, spend S), H the lower hull of the
cascades found so far, ranks a beam's prefixes (`CompletionBound.slack`): at or above 0 for every δ, no
completion lowers the final hull. Between breakpoints of L, S + L − H is concave (H is convex), so
checking the breakpoints suffices. Beyond the highest level asked for, the target T that replaces H
(`Target`, which the branch and bound of `boxes` closes against) is continuous and rising but not
convex: there a segment of L is checked as a staircase, L at its start against T at its end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from modelarb.core.hull import REACH_TOLERANCE
from modelarb.data.outcomes import Outcomes

Array = NDArray[np.float64]
Index = NDArray[np.int64]

CLOSE_TOLERANCE = 1e-12  # relative: a cascade may beat the hull by this much and still be closed
CELLS = 1_000_000  # prefixes × instances bounded at once
PAST_MARGIN = 1e-12  # a child is past the hull's top by its parent's bound only when past it by this much


def _hull_at(hull_solve: Array, hull_spend: Array, x: Array) -> Array:
    """The hull at x: flat below it, +∞ above its top (as `hull.hull_cost`, for any shape)."""
    cost = np.interp(np.minimum(x, hull_solve[-1]), hull_solve, hull_spend)
    return np.where(x > hull_solve[-1] + REACH_TOLERANCE, np.inf, cost)


@dataclass(frozen=True, eq=False)
class Target:
    """What a cascade at solve rate x must spend less than to change C(u) at any u ≤ `top` (the highest
    level asked for): T(x) ≥ E(x), E the final hull's envelope on [0, top] (the final hull up to `top`, its
    tangent at `top` beyond), so that closing what stays at or above T leaves C(u ≤ top) exact.

    T is the hull so far H, and beyond `top` also the line from (top, `floor`) through any vertex b of H
    with top < b.x ≤ x: the final hull's slope at top is at most (H(b) − H_final(top)) / (b.x − top), and
    `floor` ≤ H_final(top). Above H's top (H = +∞) this still closes what spends too much.
    """

    solve: Array
    spend: Array
    top: float
    floor: float

    @classmethod
    def of(cls, hull_solve: Array, hull_spend: Array, top: float | None = None, floor: float = 0.0) -> Target:
        return cls(hull_solve, hull_spend, np.inf if top is None else top, floor)

    @property
    def convex_to(self) -> float:
        """T is the hull so far (convex) up to this solve rate: its first vertex past `top` (+∞: none)."""
        beyond = self.solve[self.solve > self.top + REACH_TOLERANCE]
        return float(beyond[0]) if beyond.size else np.inf

    @property
    def reach(self) -> float:
        """The solve rate above which T is +∞ (+∞ where lines beyond `top` extend it)."""
        return float(self.solve[-1] + REACH_TOLERANCE) if self.convex_to == np.inf else np.inf

    @property
    def convex(self) -> bool:
        """T is the hull itself (nothing beyond `top`), at least one segment of it, nondecreasing."""
        return (
            self.convex_to == np.inf
            and len(self.solve) >= 2
            and bool(np.all(np.diff(self.solve) > 0))
            and bool(np.all(np.diff(self.spend) >= 0))
        )

    def at(self, x: Array) -> Array:
        """T at solve rates x (any shape)."""
        cost = _hull_at(self.solve, self.spend, x)
        beyond = np.flatnonzero(self.solve > self.top + REACH_TOLERANCE)
        if beyond.size == 0:
            return cost
        slope = np.minimum.accumulate((self.spend[beyond] - self.floor) / (self.solve[beyond] - self.top))
        lined = np.flatnonzero(x >= self.solve[beyond[0]])  # the lines start at the first vertex past top
        if lined.size == 0:
            return cost
        x_lined = np.asarray(x).ravel()[lined]
        last = np.searchsorted(self.solve[beyond], x_lined, side="right") - 1  # the last such vertex at or below x
        flat = cost.ravel()
        flat[lined] = np.minimum(flat[lined], self.floor + slope[last] * (x_lined - self.top))
        return cost


@dataclass(frozen=True, eq=False)
class CompletionBound:
    """Per instance and provider: least spend per unit of solve chance `per_solve` (I, P), and `reach` (I, P),
    the share of an instance's unsolved chance the provider removes with unlimited attempts (0 or 1)."""

    per_solve: Array
    reach: Array

    @classmethod
    def of(cls, outcomes: Outcomes) -> CompletionBound:
        solvable = outcomes.s > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(solvable, outcomes.cost * (outcomes.n + 1) / (outcomes.s + 1), np.inf)
        return cls(rate, solvable.astype(float))

    def least_at(self, solve: float, n_instances: int, stages: int) -> float:
        """A lower bound on the spend of any cascade of at most `stages` stages reaching `solve`."""
        delta, least, _, _ = self._curves(np.ones((1, n_instances)), np.zeros(0, np.int64), stages)
        return float(np.interp(solve, delta[0], least[0]))

    def _free(self, used: Index) -> Index:
        """The providers a completion may still use."""
        return np.setdiff1d(np.arange(self.per_solve.shape[1]), used)

    def _reach(self, fail: Array, free: Index, remaining: int) -> tuple[Array, Array]:
        """Per prefix (K,): what the `remaining` unused providers with the most reach could remove (the sum of
        their gains), and what any unused provider removes."""
        n_inst = self.per_solve.shape[0]
        gains = fail @ self.reach[:, free] / n_inst  # (K, free)
        if remaining < free.size:  # the `remaining` largest gains
            gains = np.partition(gains, free.size - remaining, axis=1)[:, free.size - remaining :]
        return gains.sum(axis=1), fail @ self.reach[:, free].max(axis=1) / n_inst

    def _most(self, fail: Array, free: Index, remaining: int) -> Array:
        """The most δ (K,): at most what the `remaining` unused providers with the most reach, or any, remove."""
        return np.minimum(*self._reach(fail, free, remaining))

    def past_children(
        self, fail: Array, used: Index, remaining: int, hull: Target, solve: Array, parent: Index, gained: Array
    ) -> NDArray[np.bool_]:
        """Which children of prefixes (rows of `fail`, at solve rates `solve`) `slack` finds −∞ (a completion may
        pass H's top) whatever they leave unsolved: child k extends prefix `parent[k]`, gaining `gained[k]`.

        A child that gains Δ removes Δ of its parent's unsolved chance, so each provider's gain after it is at least
        its gain after the parent less Δ: R + most ≥ R_p + Δ + min(G_p − r Δ, W_p − Δ), G_p the parent's r largest
        gains and W_p what any unused provider removes after it (r = `remaining`).
        """
        free = self._free(used)
        if free.size == 0 or remaining <= 0 or not np.isfinite(hull.reach):
            return np.zeros(len(parent), dtype=bool)
        top, removable = self._reach(fail, free, remaining)
        least = solve[parent] + np.minimum(top[parent] - (remaining - 1) * gained, removable[parent])
        return least > hull.reach + PAST_MARGIN

    def _curves(self, fail: Array, used: Index, remaining: int) -> tuple[Array, Array, Array, Array]:
        """For prefixes sharing the used providers: breakpoints (δ, L) (K, I + 1), the most δ (K,), and the
        slopes of L's segments (I,), the instances' rates in increasing order (+∞: none removes it)."""
        n_inst = self.per_solve.shape[0]
        free = self._free(used)
        if free.size == 0 or remaining <= 0:
            zero = np.zeros((len(fail), 1))
            return zero, zero, np.zeros(len(fail)), np.zeros(0)
        rate = self.per_solve[:, free].min(axis=1)
        order = np.argsort(rate, kind="stable")
        rate = rate[order]
        finite = np.isfinite(rate)
        k = len(fail)
        delta, spend = np.zeros((k, n_inst + 1)), np.zeros((k, n_inst + 1))
        mass = np.take(fail, order, axis=1)
        mass *= finite / n_inst
        np.cumsum(mass, axis=1, out=delta[:, 1:])
        mass *= np.where(finite, rate, 0.0)
        np.cumsum(mass, axis=1, out=spend[:, 1:])
        return delta, spend, self._most(fail, free, remaining), rate

    def slack(self, solve: Array, spend: Array, fail: Array, used: Index, remaining: int, hull: Target) -> Array:
        """min over δ of (S + L(δ) − H(R + δ)) / S per prefix: ≥ 0 closes it, the lower the more promising
        (−∞ where a completion may reach past the hull's top)."""
        free = self._free(used)
        if free.size == 0 or remaining <= 0 or not np.isfinite(hull.reach):
            return self._slack(solve, spend, fail, used, remaining, hull)
        past = solve + self._most(fail, free, remaining) > hull.reach  # no curve needed there
        if not past.any():
            return self._slack(solve, spend, fail, used, remaining, hull)
        out = np.full(len(solve), -np.inf)
        rows = np.flatnonzero(~past)
        if rows.size:
            out[rows] = self._slack(solve[rows], spend[rows], fail[rows], used, remaining, hull)
        return out

    def _slack(self, solve: Array, spend: Array, fail: Array, used: Index, remaining: int, hull: Target) -> Array:
        """`slack` of prefixes, by L's breakpoints (or H's segments where `_segment_slack` applies)."""
        delta, least, most, rate = self._curves(fail, used, remaining)
        # the curve stops at δ = most: clip the breakpoints there, L read by linear interpolation
        below = (delta < most[:, None]).sum(axis=1)  # breakpoints before `most`; ≥ 1 since delta[:, 0] = 0
        j = np.minimum(below, delta.shape[1] - 1)
        rows = np.arange(len(j))
        d0, d1, l0, l1 = delta[rows, j - 1], delta[rows, j], least[rows, j - 1], least[rows, j]
        with np.errstate(invalid="ignore", divide="ignore"):
            at_most = np.where(d1 > d0, l0 + (most - d0) * (l1 - l0) / (d1 - d0), l0)
        if hull.convex and rate.size:
            return _segment_slack(solve, spend, delta, least, most, at_most, rate, hull)
        # both rise along a row: past `most`, δ becomes `most` and L becomes L(most)
        np.minimum(delta, most[:, None], out=delta)
        np.minimum(least, at_most[:, None], out=least)
        delta += solve[:, None]
        least += spend[:, None]
        target = hull.at(delta)
        with np.errstate(invalid="ignore"):
            value = least - target
            # past where T is convex, a segment's least value is bounded by a staircase (T rises, L rises)
            stair = np.where(delta[:, 1:] > hull.convex_to, least[:, :-1] - target[:, 1:], np.inf)
        return np.minimum(value.min(axis=1), stair.min(axis=1, initial=np.inf)) / np.maximum(np.abs(spend), 1e-300)


def _segment_slack(
    solve: Array, spend: Array, delta: Array, least: Array, most: Array, at_most: Array, rate: Array, hull: Target
) -> Array:
    """`CompletionBound.slack` against a convex nondecreasing H, one hull segment at a time (K × segments, not
    K × breakpoints of L).

    On its domain H is the largest of its segments' lines y_j + s_j (x − x_j) (and of the flat line y_0), so
    min_δ S + L(δ) − H(R + δ) = min_j min_δ [S + L(δ) − y_j − s_j (R + δ − x_j)]. L is convex with slopes the
    sorted rates, so the inner minimum over δ ≤ `most` lies at the breakpoint where the rates reach s_j (the
    same column for every prefix), or at `most` if that comes first. Past H's top the slack is −∞.
    """
    slope = np.append(0.0, np.diff(hull.spend) / np.diff(hull.solve))
    x, y = np.append(hull.solve[0], hull.solve[:-1]), np.append(hull.spend[0], hull.spend[:-1])
    column = np.searchsorted(rate, slope, side="left")  # rates below s_j: the δ where L's slope reaches s_j
    d, least_d = delta[:, column], least[:, column]
    clipped = d > most[:, None]
    d = np.where(clipped, most[:, None], d)
    least_d = np.where(clipped, at_most[:, None], least_d)
    value = (spend[:, None] + least_d - y) - slope * (solve[:, None] + d - x)
    slack = value.min(axis=1) / np.maximum(np.abs(spend), 1e-300)
    past = solve + most > hull.solve[-1] + REACH_TOLERANCE
    return np.where(past, -np.inf, slack)
