"""Exact cascade search (METHOD §4): every cap that changes an attempt count, every provider order.

A cascade's stage m only depends on its cap through the attempt counts k_m, so each
stage's cap can be taken from its provider's `Breakpoints`. Cascades grow stage by
stage: each prefix (providers and caps so far, and the chance it leaves each instance
unsolved) is extended by every cap of every provider it may use next, in one weighted
running sum. Every cascade met is a candidate for the lower convex hull of (mean solve,
mean spend). When all cascades are few enough the search keeps every prefix and is
exhaustive; otherwise it is a beam search that keeps, per solve-rate bin and per last
provider, the prefix closest to the hull so far, and says so in `method`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from math import factorial, prod
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from modelarb.core.cascade import Cascade
from modelarb.core.exact_curves import Breakpoints, evaluate, provider_cost_curves
from modelarb.core.hull import lower_hull, read_hull
from modelarb.core.passk import attempts_within, failure_probability
from modelarb.core.result import ArbitrageResult
from modelarb.data.outcomes import Outcomes
from modelarb.errors import AnalysisError

Array = NDArray[np.float64]
Index = NDArray[np.int64]
Orders = Literal["all"] | Sequence[Sequence[str]] | None

EXHAUSTIVE_CASCADES = 20_000_000  # search every cascade when there are at most this many
EXHAUSTIVE_PREFIX_CELLS = 10_000_000  # ... and every prefix's unsolved chances (prefixes × instances) fit
DEFAULT_BEAM = 64  # solve-rate bins of the beam search otherwise
SWEEP_BYTES = 16 * 2**20  # one (prefixes × steps) array of a sweep


@dataclass(frozen=True, eq=False)
class _Points:
    """Cascades with their mean solve and spend: stages (n, M) as provider columns (-1 pads), caps (n, M)."""

    solve: Array
    spend: Array
    stages: Index
    caps: Array

    def take(self, index: Index) -> _Points:
        return _Points(self.solve[index], self.spend[index], self.stages[index], self.caps[index])

    @staticmethod
    def joined(parts: Sequence[_Points]) -> _Points:
        return _Points(
            np.concatenate([p.solve for p in parts]),
            np.concatenate([p.spend for p in parts]),
            np.concatenate([p.stages for p in parts]),
            np.concatenate([p.caps for p in parts]),
        )

    def hull(self) -> _Points:
        return self.take(lower_hull(self.solve, self.spend))

    def cascade(self, k: int, providers: tuple[str, ...]) -> Cascade:
        used = self.stages[k] >= 0
        return Cascade(tuple(providers[p] for p in self.stages[k][used]), tuple(self.caps[k][used]))


@dataclass(frozen=True, eq=False)
class _Sweep:
    """The cascades made by extending prefixes `rows` with provider q at every cap of `step`."""

    prefixes: _Points
    rows: Index
    q: int
    step: Breakpoints
    depth: int
    solve: Array  # (R, G)
    spend: Array

    def points(self, flat: Index) -> _Points:
        """The cascades at flat positions of the (R, G) sweep."""
        r, g = np.divmod(flat, self.solve.shape[1])
        stages, caps = self.prefixes.stages[self.rows[r]], self.prefixes.caps[self.rows[r]]
        stages[:, self.depth], caps[:, self.depth] = self.q, self.step.caps[g]
        return _Points(self.solve.ravel()[flat], self.spend.ravel()[flat], stages, caps)


def exact_search(
    outcomes: Outcomes,
    levels: NDArray[np.float64],
    *,
    orders: Orders = None,
    beam_width: int | None = None,
) -> ArbitrageResult:
    """The cheapest cascade, or mix of two, at each target solve rate u, over exact caps.

    `orders`: provider orders to search (None or "all": every order of every subset; a list
    of orders also allows their subsequences, since a zero cap drops a stage). `beam_width`:
    None searches exhaustively when at most `EXHAUSTIVE_CASCADES` cascades exist (and their
    prefixes fit in memory), else runs a beam search over `DEFAULT_BEAM` bins; a number forces
    a beam search that keeps, in each of that many solve-rate bins, the prefix nearest the
    hull for each last provider. `method` of the result says which search ran.
    """
    levels = np.asarray(levels, dtype=float)
    if levels.ndim != 1 or levels.size == 0:
        raise AnalysisError("give at least one target solve rate")
    if beam_width is not None and beam_width < 1:
        raise AnalysisError(f"the beam width must be a positive number of bins, got {beam_width}")
    allowed = _allowed_sequences(outcomes, orders)
    steps = [Breakpoints.of(outcomes, p) for p in range(outcomes.n_providers)]
    counts = _cascade_counts([len(s.caps) for s in steps], allowed, outcomes.n_providers)
    total = sum(counts)
    fits = (
        total <= EXHAUSTIVE_CASCADES and max(counts[:-1], default=0) * outcomes.n_instances <= EXHAUSTIVE_PREFIX_CELLS
    )
    bins = beam_width or (None if fits else DEFAULT_BEAM)
    hull, evaluated = _search(outcomes, steps, allowed, bins)
    scope = "every order" if allowed is None else "orders " + ", ".join(" → ".join(o) for o in orders or [])
    if bins is None:
        method = f"exact caps, exhaustive: all {evaluated:,} cascades over {scope}; lower convex hull"
    else:
        method = (
            f"exact caps, beam search (not exhaustive): per stage the prefix nearest the hull in each of {bins} "
            f"solve-rate bins for each last provider; {evaluated:,} of {total:.3g} cascades over {scope}; "
            "lower convex hull"
        )
    return _result(outcomes, levels, hull, method)


def _allowed_sequences(outcomes: Outcomes, orders: Orders) -> set[tuple[int, ...]] | None:
    """Stage sequences the search may build (None: any sequence of distinct providers)."""
    if orders is None or orders == "all":
        return None
    if isinstance(orders, str):
        raise AnalysisError(f"orders must be 'all' or a list of provider orders, got {orders!r}")
    allowed: set[tuple[int, ...]] = set()
    for order in orders:
        columns = tuple(outcomes.provider_index(order))
        if not columns or len(set(columns)) != len(columns):
            raise AnalysisError(f"an order names at least one provider, each at most once: {list(order)}")
        for size in range(1, len(columns) + 1):
            allowed.update(itertools.combinations(columns, size))
    if not allowed:
        raise AnalysisError("give at least one provider order")
    return allowed


def _cascade_counts(groups: list[int], allowed: set[tuple[int, ...]] | None, n_providers: int) -> list[float]:
    """How many cascades with m stages, all caps nonzero, the allowed sequences hold (m = 1 … P)."""
    if allowed is not None:
        return [
            float(sum(prod(groups[p] for p in seq) for seq in allowed if len(seq) == m))
            for m in range(1, n_providers + 1)
        ]
    # ordered sequences of m distinct providers: m! · e_m(groups), e_m the elementary symmetric sums
    elementary = np.zeros(n_providers + 1)
    elementary[0] = 1.0
    for g in groups:
        elementary[1:] = elementary[1:] + g * elementary[:-1]
    return [float(elementary[m] * factorial(m)) for m in range(1, n_providers + 1)]


def _search(
    outcomes: Outcomes, steps: list[Breakpoints], allowed: set[tuple[int, ...]] | None, bins: int | None
) -> tuple[_Points, int]:
    """The hull of every cascade met (vertices by increasing solve), and how many were evaluated."""
    n_p = outcomes.n_providers
    hull = _Points(np.zeros(1), np.zeros(1), np.full((1, n_p), -1), np.zeros((1, n_p)))  # buy nothing
    prefixes, fail, evaluated = hull, np.ones((1, outcomes.n_instances)), 0
    top = float(np.any(outcomes.s > 0, axis=1).mean())  # > 0 once there is any step to sweep
    for depth in range(n_p):
        last, kept = depth == n_p - 1, []
        for sweep in _sweeps(prefixes, fail, steps, allowed, depth):
            evaluated += sweep.solve.size
            solve, spend = sweep.solve.ravel(), sweep.spend.ravel()
            floor = np.interp(solve, hull.solve, hull.spend, right=np.inf)  # the hull so far
            below = np.flatnonzero(spend <= floor)
            hull = _Points.joined([hull, sweep.points(below)]).hull()
            if not last:
                keep = (
                    np.arange(solve.size) if bins is None else _nearest(solve, spend, floor, sweep.q, bins / top, n_p)
                )
                kept.append(sweep.points(keep))
        if not kept:
            break
        prefixes = _Points.joined(kept)
        if bins is not None:
            floor = np.interp(prefixes.solve, hull.solve, hull.spend, right=np.inf)
            near = _nearest(prefixes.solve, prefixes.spend, floor, prefixes.stages[:, depth], bins / top, n_p)
            prefixes = prefixes.take(near)
        fail = _unsolved(outcomes, prefixes)
    return hull, evaluated


def _sweeps(
    prefixes: _Points,
    fail: Array,
    steps: list[Breakpoints],
    allowed: set[tuple[int, ...]] | None,
    depth: int,
) -> Iterator[_Sweep]:
    """Every allowed extension of the prefixes by one more provider, in chunks of prefixes."""
    sequences, which = np.unique(prefixes.stages[:, :depth], axis=0, return_inverse=True)
    for q, step in enumerate(steps):
        ok = [q not in seq and (allowed is None or (*seq, q) in allowed) for seq in sequences.tolist()]
        rows = np.flatnonzero(np.asarray(ok, dtype=bool)[which.ravel()])
        if rows.size == 0 or step.caps.size == 0:
            continue
        chunk = max(1, SWEEP_BYTES // (8 * max(step.instance.size, step.caps.size)))
        for start in range(0, rows.size, chunk):
            part = rows[start : start + chunk]
            solve, spend = step.sweep(fail[part])
            solve += prefixes.solve[part, None]
            spend += prefixes.spend[part, None]
            yield _Sweep(prefixes, part, q, step, depth, solve, spend)


def _nearest(solve: Array, spend: Array, floor: Array, last: Index | int, per_solve: float, n_p: int) -> Index:
    """For each solve-rate bin (`per_solve` bins per unit of solve rate) and last provider, the point nearest
    the hull: least relative excess spend over `floor`, the hull at its solve rate."""
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.where(floor > 0, spend / floor - 1.0, np.where(spend > 0, np.inf, 0.0))
    finite = np.flatnonzero(np.isfinite(gap))
    if finite.size == 0:
        return finite
    key = (solve[finite] * per_solve).astype(np.int64) * n_p + np.broadcast_to(last, solve.shape)[finite]
    best = np.full(int(key.max()) + 1, np.inf)
    np.minimum.at(best, key, gap[finite])
    hit = np.flatnonzero(gap[finite] == best[key])
    _, first = np.unique(key[hit], return_index=True)
    return finite[hit[first]]


def _unsolved(outcomes: Outcomes, points: _Points) -> Array:
    """The chance (K, I) that each cascade leaves each instance unsolved: Π_m F_m(k_m)."""
    fail = np.ones((len(points.solve), outcomes.n_instances))
    for m in range(points.stages.shape[1]):
        for p in np.unique(points.stages[:, m][points.stages[:, m] >= 0]):
            rows = np.flatnonzero(points.stages[:, m] == p)
            k = attempts_within(points.caps[rows, m][:, None], outcomes.cost[None, :, p])
            fail[rows] *= failure_probability(outcomes.n[None, :, p], outcomes.s[None, :, p], k)
    return fail


def _result(outcomes: Outcomes, levels: Array, hull: _Points, method: str) -> ArbitrageResult:
    """C_q(u) from the hull; at each u the cascade with the larger share and its partner in the mix."""
    reading = read_hull(hull.solve, hull.spend, levels)
    right_main = reading.weight >= 0.5
    main = np.where(right_main, reading.right, reading.left)
    partner = np.where(right_main, reading.left, reading.right)
    share = np.where(right_main, 1.0 - reading.weight, reading.weight)
    mixed = reading.reached & (share > 0) & (partner != main)
    used, index = np.unique(np.concatenate([main[reading.reached], partner[mixed]]), return_inverse=True)
    index = index.ravel()
    cascade_at = np.full(len(levels), -1, dtype=np.int64)
    partner_at = np.full(len(levels), -1, dtype=np.int64)
    cascade_at[reading.reached] = index[: int(reading.reached.sum())]
    partner_at[mixed] = index[int(reading.reached.sum()) :]
    cascades = tuple(hull.cascade(int(k), outcomes.providers) for k in used)
    by_provider = np.zeros((len(hull.solve), outcomes.n_providers))
    by_provider[used] = evaluate(outcomes, cascades).stage_spend
    spend = (1.0 - reading.weight)[:, None] * by_provider[reading.left] + reading.weight[:, None] * by_provider[
        reading.right
    ]
    return ArbitrageResult(
        providers=outcomes.providers,
        cost_unit=outcomes.unit,
        scheme="exact",
        method=method,
        levels=levels,
        provider_costs=provider_cost_curves(outcomes, levels),
        arbitrage_cost=reading.cost,
        cascades=cascades,
        cascade_at=cascade_at,
        spend=np.where(reading.reached[:, None], spend, 0.0),
        partner_at=partner_at,
        partner_weight=np.where(mixed, share, 0.0),
    )
