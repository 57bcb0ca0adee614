"""Lower bounds on what completing a cascade prefix can cost (branch and bound over cascades, METHOD §4).

A stage that buys k attempts of provider p on instance i, which the stages before left
unsolved with chance w, removes w · (1 − F(k)) of it for w · c · Σ_{j<k} F(j). Hazards grow
as attempts are drawn without replacement, so spend per solve chance removed is least
when every failure has been drawn: r_ip = c_ip (n + 1) / (s + 1) (∞ if s = 0). Whatever
stages follow, removing δ of the mean unsolved chance costs at least the cheapest
fractional filling L(δ) of the instances' remaining chances w_i at r_i = min over unused
providers of r_ip (a convex, piecewise linear curve), and δ is at most what the unused
providers with the most reach could remove, one per remaining stage.

A prefix (solve R, spend S) is closed when S + L(δ) ≥ H(R + δ) for every δ, H the lower
hull of the cascades found so far: no completion then lowers the final hull. Between
breakpoints of L, S + L − H is concave (H is convex), so checking the breakpoints suffices.
Beyond the highest level asked for, the target T that replaces H (`Target`) is continuous and
rising but not convex: there a segment of L is checked as a staircase, L at its start against
T at its end.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from modelarb.core.hull import REACH_TOLERANCE, lower_hull
from modelarb.data.outcomes import Outcomes

Array = NDArray[np.float64]
Index = NDArray[np.int64]

CLOSE_TOLERANCE = 1e-12  # relative: a completion may beat the hull by this much and still be closed
GROUPS = 32  # breakpoints of the coarse bound on a prefix's children
GRID = 256  # solve-rate cells of the coarse bound
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

    @cached_property
    def envelope(self) -> Target:
        """The lower convex envelope of T up to solve rate 1, as a convex target: E ≤ it ≤ T (E is convex), so
        it closes soundly too, if less than T past `top`. Between H's vertices and the first vertices of the lines
        past `top`, T is the least of two linear functions (concave), so its envelope is the lower hull of T there."""
        if self.convex or len(self.solve) < 2:
            return self
        x = np.append(self.solve, 1.0)
        x = np.unique(x[x <= 1.0])
        y = self.at(x)
        finite = np.isfinite(y)
        vertices = lower_hull(x[finite], y[finite])
        return Target.of(x[finite][vertices], y[finite][vertices])

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

    @cached_property
    def _stage_rates(self) -> list[tuple[Index, Array]]:
        """Per provider: the instances it can solve by increasing least spend per solve, and those rates."""
        rates = []
        for rate in self.per_solve.T:
            order = np.argsort(rate, kind="stable")[: int(np.isfinite(rate).sum())]
            rates.append((order, rate[order]))
        return rates

    def open_one_stage(self, solve: Array, spend: Array, fail: Array, used: Index, hull: Target) -> NDArray[np.bool_]:
        """Which prefixes (sharing the `used` providers) one more stage may still improve the hull with.

        One stage uses one provider q, so removing δ costs at least L_q(δ), the filling of the instances' unsolved
        chances at q's own rates (not the least over all providers): a prefix is closed when S + L_q(δ) ≥ T(R + δ)
        for every unused q and δ. Checked against T's convex envelope (`Target.envelope`), one of its segments at a
        time: the least of S + L_q(δ) − y_j − s_j (R + δ − x_j) over δ lies where q's sorted rates reach the
        segment's slope s_j, the same instance for every prefix (as in `_segment_slack`); a prefix q may take past
        the envelope's top stays open. Holds for any market.
        """
        n_inst = self.per_solve.shape[0]
        target = hull.envelope
        slope = np.append(0.0, np.diff(target.spend) / np.diff(target.solve))
        x, y = np.append(target.solve[0], target.solve[:-1]), np.append(target.spend[0], target.spend[:-1])
        offset = n_inst * (slope * x - y)
        margin = -CLOSE_TOLERANCE * np.maximum(np.abs(spend), 1e-300)
        is_open = spend - target.at(solve) < margin  # the prefix itself below the envelope
        for q in self._free(used).tolist():
            order, rate = self._stage_rates[q]
            rows = np.flatnonzero(~is_open)  # closed so far
            if rate.size == 0 or rows.size == 0:
                continue
            # δ_j and L_q(δ_j) of each segment j: sums over q's instances up to where its rates reach s_j
            column = np.searchsorted(rate, slope, side="left")
            cuts = np.unique(np.append(column[column > 0], rate.size))  # > 0, increasing, the last is all of them
            mass = np.take(fail if rows.size == len(fail) else fail[rows], order, axis=1)
            starts = np.append(0, cuts[:-1])
            removed = np.zeros((rows.size, cuts.size + 1))
            least = np.zeros_like(removed)
            np.cumsum(np.add.reduceat(mass, starts, axis=1), axis=1, out=removed[:, 1:])
            mass *= rate
            np.cumsum(np.add.reduceat(mass, starts, axis=1), axis=1, out=least[:, 1:])
            at = np.searchsorted(cuts, column, side="left") + (column > 0)  # column 0: nothing removed
            # n_inst · (S + L_q(δ_j) − y_j − s_j (R + δ_j − x_j)), the least over j
            value = least[:, at] - removed[:, at] * slope
            value += n_inst * spend[rows, None] - (n_inst * solve[rows, None]) * slope + offset
            past = solve[rows] + removed[:, -1] / n_inst > target.reach  # T is +∞ there
            is_open[rows] = (value.min(axis=1) < n_inst * margin[rows]) | past
        return is_open

    def open_prefixes(
        self, solve: Array, spend: Array, fail: Array, used: Index, remaining: int, hull: Target
    ) -> NDArray[np.bool_]:
        """Which prefixes (sharing the `used` providers) some completion of at most `remaining` stages may
        still improve the hull with."""
        return self.slack(solve, spend, fail, used, remaining, hull) < -CLOSE_TOLERANCE

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

    def child_thresholds(self, fail: Array, used: Index, remaining: int, hull: Target) -> Array:
        """Per prefix and solve-rate cell (K, GRID + 1): a spend at or above which a child of the prefix
        (one more stage) whose solve rate lies in the cell is closed.

        A child's completions are completions of its parent, so the parent's curve L bounds them from
        the child's own point: φ(x) = max_δ H(x + δ) − L(δ) closes a child at (x, S) with S ≥ φ(x); φ
        rises with x, so the cell's right end gives a threshold for the whole cell. L is coarsened to
        `GROUPS` breakpoints, each group charged at its cheapest rate (a lower bound again).
        """
        delta, least, most, _ = self._curves(fail, used, remaining)
        n_b = delta.shape[1]
        picks = np.unique(np.linspace(0, n_b - 1, GROUPS + 1).astype(np.int64))
        # group [picks[g], picks[g+1]): charged at the slope of its first segment (the least in the group)
        slope = np.diff(least, axis=1) / np.maximum(np.diff(delta, axis=1), 1e-300)
        slope = np.hstack([slope, slope[:, -1:]])
        d = delta[:, picks]
        coarse = np.zeros_like(d)
        coarse[:, 1:] = np.cumsum(np.diff(d, axis=1) * slope[:, picks[:-1]], axis=1)
        # past the most δ: the point δ = most, charged what the last breakpoint before it is (less than L(most))
        past = d > most[:, None]
        before = np.maximum((~past).sum(axis=1) - 1, 0)
        coarse = np.where(past, coarse[np.arange(len(d)), before][:, None], coarse)
        d = np.where(past, most[:, None], d)
        cells = np.linspace(0.0, 1.0, GRID + 1)  # right ends of the cells
        phi = np.empty((len(fail), GRID + 1))
        for g in range(d.shape[1]):
            right = cells[None, :] + d[:, min(g + 1, d.shape[1] - 1), None]
            # past where T is convex, T at the segment's right end bounds it over the segment (a staircase)
            at = np.where(right > hull.convex_to, right, cells[None, :] + d[:, g : g + 1])
            value = hull.at(at) - coarse[:, g : g + 1]
            phi = value if g == 0 else np.maximum(phi, value)
        return phi


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


def cell_of(solve: Array) -> Index:
    """The cell (of `GRID`) whose right end bounds each solve rate from above."""
    return np.minimum(np.ceil(solve * GRID - 1e-9), GRID).astype(np.int64)
