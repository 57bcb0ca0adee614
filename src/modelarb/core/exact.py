"""Exact cascade search (METHOD §4): every cap that changes an attempt count, every provider order.

A cascade's stage m only depends on its cap through the attempt counts k_m, so each
stage's cap can be taken from its provider's `Breakpoints`. Cascades grow stage by
stage: each prefix (providers and caps so far, and the chance it leaves each instance
unsolved) is extended by every cap of every provider it may use next, in one weighted
running sum. Every cascade met is a candidate for the lower convex hull of (mean solve,
mean spend). When all cascades are few enough the search keeps every prefix and is
exhaustive; for short cascades it is a branch and bound over boxes of caps that closes the
boxes none of whose cascades can change C(u) (`boxes`), starting from a beam search's hull,
polished (`polish`); otherwise it is a beam search that keeps, per solve-rate bin and per set of providers used (or last
provider), the prefix closest to the hull so far (and the next closest where its budget of
cascades allows: short cascades over few providers), its hull polished (for cascades of more than
`BRANCH_DEPTH` stages within a budget; for shorter ones, the caps of the provider orders on it are
then proven optimal by the same branch and bound), and says so in `method`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from math import factorial, prod
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from modelarb.core.bounds import CELLS, CLOSE_TOLERANCE, CompletionBound, Target
from modelarb.core.boxes import box_search
from modelarb.core.cascade import Cascade
from modelarb.core.exact_curves import Breakpoints, evaluate, provider_cost_curves
from modelarb.core.hull import lower_hull, read_hull
from modelarb.core.passk import FailureTable, FailureTables, attempts_within
from modelarb.core.polish import Candidates, polished
from modelarb.core.result import ArbitrageResult
from modelarb.core.rows import Rows
from modelarb.data.outcomes import Outcomes
from modelarb.errors import AnalysisError

Array = NDArray[np.float64]
Index = NDArray[np.int64]
Orders = Literal["all"] | Sequence[Sequence[str]] | None

EXHAUSTIVE_CASCADES = 20_000_000  # search every cascade when there are at most this many
EXHAUSTIVE_PREFIX_CELLS = 10_000_000  # ... and every prefix's unsolved chances (prefixes × instances) fit
BRANCH_DEPTH = 3  # otherwise branch and bound (`boxes`) when cascades have at most this many stages
DEFAULT_BEAM = 64  # solve-rate bins of the beam search otherwise
BEAM_PER_BIN = 16  # a beam keeps at most this many prefixes per solve-rate bin (the most promising)
BEAM_CASCADES = 240_000  # ... or more while its later stages evaluate at most this many cascades per bin in all
SET_KEYS = 200_000  # ... nearest the hull per bin and set of providers used while bins × sets are at most this
DEFAULT_BEAM_DEPTH = 6  # ... over cascades of at most this many stages unless a depth is given
POLISH_SHARE = 0.2  # ... its hull polished, deeper than `BRANCH_DEPTH` within this share of the cascades it evaluated
BEAM_CHILDREN = 64  # a stage with at most this many children per prefix the budget allows is not thinned per sweep
SWEEP_BYTES = 16 * 2**20  # one (prefixes × steps) array of a sweep
MIX_TOLERANCE = 1e-9  # a partner with at most this share of customers is float noise of the hull reading: no mix


@dataclass(frozen=True, eq=False)
class _Points(Rows):
    """Cascades with their mean solve and spend: stages (n, M) as provider columns (-1 pads), caps (n, M),
    and `parent`, the row of the prefix each was extended from (-1: none)."""

    solve: Array
    spend: Array
    stages: Index
    caps: Array
    parent: Index

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
        return _Points(self.solve.ravel()[flat], self.spend.ravel()[flat], stages, caps, self.rows[r])


@dataclass(frozen=True, eq=False)
class _Plan:
    """How a search runs: `bins` of a beam search (None: keep every prefix), at most `depth` stages, a branch
    and bound over boxes of caps instead (`branch`), first stages from `first` (None: any provider)."""

    bins: int | None
    depth: int
    branch: bool
    top: float  # the highest target solve rate: what lies beyond only matters through C(u ≤ top)
    first: frozenset[int] | None = None  # the providers a first stage may use (None: any)
    widen: bool = True  # a beam keeps more than `BEAM_PER_BIN` per bin where its budget allows (see `_beam_size`)


@dataclass(frozen=True, eq=False)
class SearchHull:
    """The hull of the cascades a search met, how it searched (`method`), how many cascades it evaluated, and
    whether the hull is proven optimal over the cascades searched (exhaustive, or branch and bound throughout)."""

    points: _Points
    method: str
    evaluated: int
    proven: bool

    @staticmethod
    def union(parts: Sequence[SearchHull], method: str) -> SearchHull:
        """The lower convex hull of the parts' hulls, each vertex with its cascade."""
        points = _Points.joined([part.points for part in parts]).hull()
        return SearchHull(points, method, sum(p.evaluated for p in parts), all(p.proven for p in parts))

    def result(self, outcomes: Outcomes, levels: Array) -> ArbitrageResult:
        """C_q(u) read off the hull at each level (see `exact_search`)."""
        return replace(_result(outcomes, np.asarray(levels, dtype=float), self.points, self.method), proven=self.proven)


def exact_search(
    outcomes: Outcomes,
    levels: NDArray[np.float64],
    *,
    orders: Orders = None,
    beam_width: int | None = None,
    max_depth: int | None = None,
    branch: bool | None = None,
) -> ArbitrageResult:
    """The cheapest cascade, or mix of two, at each target solve rate u, over exact caps.

    `orders`: provider orders to search (None or "all": every order of every subset; a list
    of orders also allows their subsequences, since a zero cap drops a stage). `max_depth`:
    cascades of at most this many stages (None: any). `beam_width`: a number forces a beam
    search that keeps, in each of that many solve-rate bins, the prefix nearest the hull for
    each last provider. Otherwise (None) the search is exhaustive when at most
    `EXHAUSTIVE_CASCADES` cascades exist, else a branch and bound (proven optimum) when
    cascades have at most `BRANCH_DEPTH` stages, else a beam search over `DEFAULT_BEAM` bins
    and at most `DEFAULT_BEAM_DEPTH` stages (unless `max_depth` says otherwise).
    `branch=True` forces branch and bound (unless a beam width is given); it starts from the
    hull of a beam search and proves C(u) at the given levels (it closes what cannot change
    C(u) at any u up to the highest level, see `bounds.Target`). `method` of the result says
    which search ran and whether its optimum is proven.
    """
    levels = np.asarray(levels, dtype=float)
    if levels.ndim != 1 or levels.size == 0:
        raise AnalysisError("give at least one target solve rate")
    found = exact_hull(
        outcomes, top=float(levels.max()), orders=orders, beam_width=beam_width, max_depth=max_depth, branch=branch
    )
    return found.result(outcomes, levels)


def exact_hull(
    outcomes: Outcomes,
    *,
    top: float,
    orders: Orders = None,
    beam_width: int | None = None,
    max_depth: int | None = None,
    branch: bool | None = None,
    first: Sequence[int] | None = None,
    start: tuple[Candidates, int] | None = None,
) -> SearchHull:
    """The hull of the cascades `exact_search` meets, with the same options; `top` is its highest level.

    `first`: only cascades whose first stage is one of these provider columns (one part of a
    partitioned search). The search still runs as it would over every cascade (exhaustive, branch
    and bound or beam, chosen from the whole space), so the parts of an exhaustive or branch and
    bound search merge (`SearchHull.union`) into the whole search's hull. `start`: the hull a branch
    and bound starts from instead of its own, and how many cascades making it evaluated (`warm_start`:
    one for every part, counted there); its cascades stay in the hull, whichever part they belong to.
    """
    market = _Market.of(outcomes, orders, beam_width, max_depth)
    allowed, tables, steps, joint = market.allowed, market.tables, market.steps, market.joint
    plan, total = _choose(outcomes, steps, allowed, top, beam_width, max_depth, branch)
    depth = plan.depth
    if first is not None and not all(0 <= p < outcomes.n_providers for p in first):
        raise AnalysisError(f"first-stage providers must be columns 0 … {outcomes.n_providers - 1}, got {list(first)}")
    plan = replace(plan, first=None if first is None else frozenset(first))
    admissible = _admissible(allowed, plan.first)
    gave_up, shared = False, start is not None
    if plan.branch:  # from a beam search's polished hull: the lower the hull, the more boxes close
        warm, beamed = start if start is not None else _warm_up(outcomes, market, plan, admissible)
        least = CompletionBound.of(outcomes).least_at(plan.top, outcomes.n_instances, plan.depth)
        found, searched, gave_up = box_search(outcomes, steps, tables, depth, admissible, warm, plan.top, least)
        evaluated = searched + (0 if shared else beamed)
    else:
        hull, evaluated = _search(outcomes, steps, joint, allowed, plan)
        found, beamed = _candidates(hull), evaluated
    polish = plan.bins is not None or gave_up
    if polish:  # stages also moved: a beam may keep the right providers in the wrong order
        budget = np.inf if plan.depth <= BRANCH_DEPTH else POLISH_SHARE * beamed  # deep: within a budget
        found, polishing = polished(outcomes, steps, found, admissible, moves=True, budget=budget)
        evaluated += polishing
    orders_proven: bool | None = None  # a short beam's provider orders: their caps by branch and bound
    if plan.bins is not None and plan.depth <= BRANCH_DEPTH:
        seen = _subsequences([tuple(int(p) for p in row[row >= 0]) for row in found.stages])
        least = CompletionBound.of(outcomes).least_at(plan.top, outcomes.n_instances, plan.depth)
        found, searched, outgrown = box_search(
            outcomes, steps, tables, depth, admissible, found, plan.top, least, sequences=seen
        )
        evaluated, orders_proven = evaluated + searched, not outgrown
    hull = _Points(found.solve, found.spend, found.stages, found.caps, np.full(len(found.solve), -1))
    scope = "every order" if allowed is None else "orders " + ", ".join(" → ".join(o) for o in orders or [])
    if first is not None:
        scope += ", first stage " + " or ".join(outcomes.providers[p] for p in sorted(set(first)))
    if depth < outcomes.n_providers:
        scope += f", at most {depth} stage{'s' if depth > 1 else ''}"
    if plan.bins is None and not plan.branch:
        method = f"exact caps, exhaustive: all {evaluated:,} cascades over {scope}; lower convex hull"
    elif plan.bins is None and not gave_up:
        origin = "from a shared polished warm-up hull" if shared else "its polished warm-up hull's included"
        method = (
            f"exact caps, branch and bound (proven optimum): {evaluated:,} of {total:.3g} cascades evaluated "
            f"({origin}), the others closed a box of caps at a time, over {scope}; lower convex hull"
        )
    else:
        bins = plan.bins or DEFAULT_BEAM
        fewest, size = _beam_size(bins, plan.depth, steps, outcomes.n_instances, plan.bins is not None)
        more = f", or the next nearest while fewer than {fewest:,}" if fewest > bins * BEAM_PER_BIN else ""
        notes = ["a branch and bound from its polished hull outgrew its budget, keeping what it met"] if gave_up else []
        notes += ["its hull polished (each vertex's stages chosen again one at a time, or moved)"] if polish else []
        notes += [f"polishing at most {POLISH_SHARE:.0%} as many cascades as the beam"] if depth > BRANCH_DEPTH else []
        if orders_proven is not None:
            proof = "proven optimal" if orders_proven else "searched until the search outgrew its budget"
            notes += [f"then the caps of the provider orders on it {proof} by a branch and bound over boxes of caps"]
        note = "".join(f"; {text}" for text in notes)
        method = (
            f"exact caps, beam search (not exhaustive): per stage the prefix nearest the hull in each of {bins} "
            f"solve-rate bins for each set of providers used (each last provider when those are many){more}, at most "
            f"{size:,} of them (those whose completion bound dips furthest below the hull){note}; "
            f"{evaluated:,} of {total:.3g} cascades over {scope}; lower convex hull"
        )
    return SearchHull(hull, method, evaluated, plan.bins is None and not gave_up)


def warm_start(
    outcomes: Outcomes,
    *,
    top: float,
    orders: Orders = None,
    beam_width: int | None = None,
    max_depth: int | None = None,
    branch: bool | None = None,
) -> tuple[Candidates, int] | None:
    """The hull a branch and bound with these options (as `exact_hull`'s) starts from, and how many cascades
    it evaluated; None when they make no branch and bound."""
    market = _Market.of(outcomes, orders, beam_width, max_depth)
    plan, _ = _choose(outcomes, market.steps, market.allowed, top, beam_width, max_depth, branch)
    return _warm_up(outcomes, market, plan, _admissible(market.allowed, None)) if plan.branch else None


@dataclass(frozen=True, eq=False)
class _Market:
    """What every search of a market reads: the sequences it may build (None: any), each provider's failure
    table and breakpoints, and the tables joined."""

    allowed: set[tuple[int, ...]] | None
    tables: list[FailureTable]
    steps: list[Breakpoints]
    joint: FailureTables

    @classmethod
    def of(cls, outcomes: Outcomes, orders: Orders, beam_width: int | None, max_depth: int | None) -> _Market:
        if beam_width is not None and beam_width < 1:
            raise AnalysisError(f"the beam width must be a positive number of bins, got {beam_width}")
        if max_depth is not None and max_depth < 1:
            raise AnalysisError(f"the depth must be a positive number of stages, got {max_depth}")
        tables = [FailureTable(outcomes.n[:, p], outcomes.s[:, p]) for p in range(outcomes.n_providers)]
        steps = [Breakpoints.of(outcomes, p, tables[p]) for p in range(outcomes.n_providers)]
        return cls(_allowed_sequences(outcomes, orders), tables, steps, FailureTables(tables))


def _warm_up(
    outcomes: Outcomes, market: _Market, plan: _Plan, admissible: Callable[[tuple[int, ...]], bool]
) -> tuple[Candidates, int]:
    """A branch and bound's start: a beam search's hull, polished (stages not moved: that costs too much here),
    and how many cascades that evaluated."""
    beam_plan = replace(plan, bins=DEFAULT_BEAM, branch=False, widen=False)
    beam, evaluated = _search(outcomes, market.steps, market.joint, market.allowed, beam_plan)
    start, polishing = polished(outcomes, market.steps, _candidates(beam), admissible)
    return start, evaluated + polishing


def proves(
    outcomes: Outcomes, *, orders: Orders = None, beam_width: int | None = None, max_depth: int | None = None
) -> bool:
    """Whether `exact_search` with these options aims at a proven optimum (exhaustive, or branch and bound, which
    may still give up) rather than a beam search."""
    allowed = _allowed_sequences(outcomes, orders)
    steps = [Breakpoints.of(outcomes, p) for p in range(outcomes.n_providers)]
    return _choose(outcomes, steps, allowed, 1.0, beam_width, max_depth, None)[0].bins is None


def _choose(
    outcomes: Outcomes,
    steps: list[Breakpoints],
    allowed: set[tuple[int, ...]] | None,
    top: float,
    beam_width: int | None,
    max_depth: int | None,
    branch: bool | None,
) -> tuple[_Plan, float]:
    """How `exact_hull` searches (see `exact_search`), and how many cascades of at most its depth there are."""
    depth = min(max_depth or outcomes.n_providers, outcomes.n_providers)
    counts = _cascade_counts([len(s.caps) for s in steps], allowed, outcomes.n_providers)
    total = sum(counts[:depth])
    fits = (
        total <= EXHAUSTIVE_CASCADES
        and max(counts[: depth - 1], default=0) * outcomes.n_instances <= EXHAUSTIVE_PREFIX_CELLS
    )
    if beam_width is not None:
        return _Plan(beam_width, depth, False, top), total
    if branch or (not fits and depth <= BRANCH_DEPTH):
        return _Plan(None, depth, True, top), total
    if fits:
        return _Plan(None, depth, False, top), total
    depth = min(max_depth or DEFAULT_BEAM_DEPTH, depth)  # a beam, of at most DEFAULT_BEAM_DEPTH stages by default
    return _Plan(DEFAULT_BEAM, depth, False, top), sum(counts[:depth])


def _admissible(
    allowed: set[tuple[int, ...]] | None, first: frozenset[int] | None
) -> Callable[[tuple[int, ...]], bool]:
    """Which provider sequences the search may build (`allowed`, first stage from `first`; None: any)."""

    def admissible(sequence: tuple[int, ...]) -> bool:
        return (allowed is None or not sequence or sequence in allowed) and (
            first is None or not sequence or sequence[0] in first
        )

    return admissible


def _candidates(points: _Points) -> Candidates:
    return Candidates(points.solve, points.spend, points.stages, points.caps)


def _allowed_sequences(outcomes: Outcomes, orders: Orders) -> set[tuple[int, ...]] | None:
    """Stage sequences the search may build (None: any sequence of distinct providers)."""
    if orders is None or orders == "all":
        return None
    if isinstance(orders, str):
        raise AnalysisError(f"orders must be 'all' or a list of provider orders, got {orders!r}")
    columns = [tuple(outcomes.provider_index(order)) for order in orders]
    for order, sequence in zip(orders, columns, strict=True):
        if not sequence or len(set(sequence)) != len(sequence):
            raise AnalysisError(f"an order names at least one provider, each at most once: {list(order)}")
    if not columns:
        raise AnalysisError("give at least one provider order")
    return _subsequences(columns)


def _subsequences(orders: Sequence[tuple[int, ...]]) -> set[tuple[int, ...]]:
    """Every nonempty subsequence of the orders: the sequences they allow, since a zero cap drops a stage."""
    return {seq for order in orders for size in range(1, len(order) + 1) for seq in itertools.combinations(order, size)}


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
    with np.errstate(over="ignore", invalid="ignore"):
        for g in groups:
            elementary[1:] = elementary[1:] + g * elementary[:-1]
        return [float(elementary[m] * (factorial(m) if m <= 170 else np.inf)) for m in range(1, n_providers + 1)]


def _search(
    outcomes: Outcomes,
    steps: list[Breakpoints],
    tables: FailureTables,
    allowed: set[tuple[int, ...]] | None,
    plan: _Plan,
) -> tuple[_Points, int]:
    """The hull of every cascade an exhaustive or beam search meets (vertices by increasing solve), and how many
    it evaluated."""
    n_p = outcomes.n_providers
    width = plan.depth  # stage columns: one per stage a cascade may have
    hull = _Points(np.zeros(1), np.zeros(1), np.full((1, width), -1), np.zeros((1, width)), np.full(1, -1))  # none
    prefixes, fail, evaluated = hull, np.ones((1, outcomes.n_instances)), 0
    top = float(np.any(outcomes.s > 0, axis=1).mean())  # > 0 once there is any step to sweep
    ranking = CompletionBound.of(outcomes)
    bins = plan.bins
    fewest, size = (0, 0) if bins is None else _beam_size(bins, plan.depth, steps, outcomes.n_instances, plan.widen)
    for depth in range(plan.depth):
        last, parent_solve = depth == plan.depth - 1, prefixes.solve
        kept: list[_Points] = []
        parent_set, n_sets = np.zeros(len(prefixes.solve), np.int64), 1
        thin = bins is not None and _children(prefixes, steps, depth) > BEAM_CHILDREN * fewest
        if thin and bins is not None and top > 0:
            parent_set, n_sets = _provider_sets(prefixes.stages[:, :depth], bins * BEAM_PER_BIN / top * n_p)
        for sweep in _sweeps(prefixes, fail, steps, allowed, depth, plan.first):
            evaluated += sweep.solve.size
            hull, floor = _met(hull, sweep)
            if last:
                continue
            keep = np.arange(sweep.solve.size)  # every child, unless thinned per solve bin and set of providers
            if thin and bins is not None:
                sets = (parent_set[sweep.rows] * n_p + sweep.q)[:, None]  # per row of the sweep
                fine, keys = bins * BEAM_PER_BIN / top, n_sets * n_p
                keep = _nearest(sweep.solve, sweep.spend, floor.reshape(sweep.solve.shape), sets, fine, keys)
            kept.append(sweep.points(keep))
        if not kept:
            break
        prefixes = _Points.joined(kept)
        if bins is not None:
            floor = np.interp(prefixes.solve, hull.solve, hull.spend, right=np.inf)
            fine = bins * BEAM_PER_BIN / top
            sets, n_sets = _provider_sets(prefixes.stages[:, : depth + 1], fine)
            if sets.max(initial=0) == 0:  # too many sets: per last provider
                sets, n_sets = prefixes.stages[:, depth], n_p
            near = _nearest(prefixes.solve, prefixes.spend, floor, sets, fine, n_sets)
            if len(near) < fewest:  # room for more: the next nearest per bin and set fill it
                near = _ranked(prefixes.spend, floor, _keys(prefixes.solve, sets, fine, n_sets))[:fewest]
            prefixes = prefixes.take(near)
            if len(near) > size:  # the most promising by their completion bound
                coarse = _nearest(
                    prefixes.solve, prefixes.spend, floor[near], prefixes.stages[:, depth], bins / top, n_p
                )
                target = Target.of(hull.solve, hull.spend)  # the hull itself: reaching past its top ranks first
                slack = _slack(
                    ranking, prefixes, fail, parent_solve, tables, outcomes, depth, target, plan.depth - depth - 1
                )
                rank = _promise(slack, prefixes.spend, floor[near], coarse, size // 2)
                prefixes = prefixes.take(rank[:size])
                fail = _extended(prefixes, fail, tables, outcomes, depth)
                prefixes = replace(prefixes, parent=np.arange(len(prefixes.solve)))
                continue
        fail = _extended(prefixes, fail, tables, outcomes, depth)
        prefixes = replace(prefixes, parent=np.arange(len(prefixes.solve)))
    return hull, evaluated


def _met(hull: _Points, sweep: _Sweep) -> tuple[_Points, Array]:
    """The hull with the sweep's cascades that reach it or go below, and the hull so far under each cascade (flat)."""
    solve, spend = sweep.solve.ravel(), sweep.spend.ravel()
    floor = np.interp(solve, hull.solve, hull.spend, right=np.inf)
    below = np.flatnonzero(spend <= floor)
    return _Points.joined([hull, sweep.points(below)]).hull(), floor


def _beam_size(bins: int, depth: int, steps: list[Breakpoints], instances: int, widen: bool) -> tuple[int, int]:
    """How many prefixes a beam of `bins` bins keeps per stage over cascades of at most `depth` stages, at least and at
    most: as many as the later stages' sweeps can extend within `BEAM_CASCADES` cascades per bin in all (their unsolved
    chances within `EXHAUSTIVE_PREFIX_CELLS`), and at most that or `BEAM_PER_BIN` per bin if more (unless `widen`
    is False: at most `BEAM_PER_BIN` per bin)."""
    if not widen:
        return 0, bins * BEAM_PER_BIN
    children = max(depth - 1, 1) * sum(s.caps.size for s in steps)  # cascades per prefix kept at every stage
    least = min(bins * BEAM_CASCADES // max(children, 1), EXHAUSTIVE_PREFIX_CELLS // max(instances, 1))
    return least, max(bins * BEAM_PER_BIN, least)


def _children(prefixes: _Points, steps: list[Breakpoints], depth: int) -> int:
    """At most how many children the prefixes have: each extended by every cap of every provider it lacks."""
    used = np.bincount(prefixes.stages[:, :depth][prefixes.stages[:, :depth] >= 0], minlength=len(steps))
    caps = np.array([s.caps.size for s in steps])
    return int(np.sum(caps * (len(prefixes.solve) - used)))


def _unique_rows(rows: NDArray[Any]) -> tuple[NDArray[Any], Index]:
    """The distinct rows in lexicographic order and each row's index among them, as `np.unique(rows, axis=0,
    return_inverse=True)` gives them, from a lexsort of the columns (np.unique sorts rows as records, ~10× slower)."""
    if rows.shape[1] == 0:
        return rows[:1], np.zeros(len(rows), np.int64)
    order = np.lexsort(rows.T[::-1])
    ordered = rows[order]
    new = np.ones(len(rows), bool)
    new[1:] = np.any(ordered[1:] != ordered[:-1], axis=1)
    which = np.empty(len(rows), np.int64)
    which[order] = np.cumsum(new) - 1
    return ordered[new], which


def _provider_sets(stages: Index, per_solve: float) -> tuple[Index, int]:
    """Which set of providers each row of `stages` uses (ids 0 … n − 1) and n; all 0 (and n = 1) when
    `per_solve` keys per set would exceed `SET_KEYS`."""
    _, which = _unique_rows(np.sort(stages, axis=1))
    n_sets = int(which.max(initial=0)) + 1
    if n_sets * per_solve > SET_KEYS:
        return np.zeros(len(stages), np.int64), 1
    return which, n_sets


def _slack(
    bound: CompletionBound,
    prefixes: _Points,
    fail: Array,
    parent_solve: Array,
    tables: FailureTables,
    outcomes: Outcomes,
    depth: int,
    target: Target,
    remaining: int,
) -> Array:
    """The completion bound's slack (`CompletionBound.slack`, any providers may follow) of each prefix: −∞ where
    its parent (solve rate `parent_solve`, unsolved chances `fail`) shows it (`past_children`), else from its own
    unsolved chances, made from its parent's a chunk at a time."""
    slack = np.full(len(prefixes.solve), -np.inf)
    remaining, none = max(remaining, 1), np.zeros(0, np.int64)
    gained = prefixes.solve - parent_solve[prefixes.parent]
    past = bound.past_children(fail, none, remaining, target, parent_solve, prefixes.parent, gained)
    rows = np.flatnonzero(~past)
    chunk = max(1, CELLS // max(fail.shape[1], 1))
    for start in range(0, rows.size, chunk):
        part = prefixes.take(rows[start : start + chunk])
        extended = _extended(part, fail, tables, outcomes, depth)
        slack[rows[start : start + chunk]] = bound.slack(part.solve, part.spend, extended, none, remaining, target)
    return slack


def _promise(slack: Array, spend: Array, floor: Array, first: Index, half: int) -> Index:
    """Prefixes from the most promising: the lowest `slack` (the furthest their completion bound dips below the
    hull), then the nearest the hull (`floor`: the hull at their solve rates), except that the `half` most
    promising of rows `first` go first; closed ones are left out."""
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.where(floor > 0, spend / floor - 1.0, 0.0)
    order = np.lexsort((gap, slack))
    order = order[slack[order] < -CLOSE_TOLERANCE]
    chosen = np.isin(order, first)
    chosen[np.flatnonzero(chosen)[half:]] = False  # at most `half` of `first` go first
    return np.concatenate([order[chosen], order[~chosen]])


def _extended(prefixes: _Points, fail: Array, tables: FailureTables, outcomes: Outcomes, depth: int) -> Array:
    """Each prefix's chance (K, I) of leaving each instance unsolved: its parent's, times its last stage's F(k)
    (computed once per distinct last stage)."""
    stages, which = _unique_rows(np.column_stack([prefixes.stages[:, depth], prefixes.caps[:, depth]]))
    last = stages[:, 0].astype(np.int64)
    k = attempts_within(stages[:, 1, None], outcomes.cost.T[last])
    out = fail[prefixes.parent]
    out *= tables.at(last, k)[which]
    return out


def _sweeps(
    prefixes: _Points,
    fail: Array,
    steps: list[Breakpoints],
    allowed: set[tuple[int, ...]] | None,
    depth: int,
    first: frozenset[int] | None = None,
) -> Iterator[_Sweep]:
    """Every allowed extension of the prefixes by one more provider (first stages from `first`: None, any),
    in chunks of prefixes."""
    sequences, which = _unique_rows(prefixes.stages[:, :depth])
    for q, step in enumerate(steps):
        if depth == 0 and first is not None and q not in first:
            continue
        ok = [q not in seq and (allowed is None or (*seq, q) in allowed) for seq in sequences.tolist()]
        rows = np.flatnonzero(np.asarray(ok, dtype=bool)[which])
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
    the hull: least relative excess spend over `floor`, the hull at its solve rate (the first such point; flat
    indices, by key). `last` broadcasts against `solve`, of any shape."""
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.where(floor > 0, spend / floor - 1.0, np.where(spend > 0, np.inf, 0.0)).ravel()
    if gap.size == 0:
        return np.zeros(0, np.int64)
    key = _keys(solve, last, per_solve, n_p).ravel()
    best = np.full(int(key.max()) + 1, np.inf)
    np.minimum.at(best, key, gap)
    hit = np.flatnonzero((gap == best[key]) & (gap < np.inf))
    first = np.full(len(best), gap.size)
    np.minimum.at(first, key[hit], hit)
    return first[first < gap.size]


def _keys(solve: Array, last: Index | int, per_solve: float, n_p: int) -> Index:
    """Each point's solve-rate bin (`per_solve` bins per unit of solve rate) and last provider (or set) as one key."""
    return (solve * per_solve).astype(np.int64) * n_p + np.broadcast_to(last, solve.shape)


def _ranked(spend: Array, floor: Array, key: Index) -> Index:
    """Points by their rank within their key (the nearest the hull first: least relative excess spend over `floor`),
    then by that excess; points no hull reaches are left out."""
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.where(floor > 0, spend / floor - 1.0, np.where(spend > 0, np.inf, 0.0))
    order = np.lexsort((gap, key))
    order = order[np.isfinite(gap[order])]
    start = np.flatnonzero(np.r_[True, key[order][1:] != key[order][:-1]])
    rank = np.arange(order.size) - np.repeat(start, np.diff(np.r_[start, order.size]))
    return order[np.lexsort((gap[order], rank))]


def _result(outcomes: Outcomes, levels: Array, hull: _Points, method: str) -> ArbitrageResult:
    """C_q(u) from the hull; at each u the cascade with the larger share and its partner in the mix."""
    reading = read_hull(hull.solve, hull.spend, levels)
    right_main = reading.weight >= 0.5
    main = np.where(right_main, reading.right, reading.left)
    partner = np.where(right_main, reading.left, reading.right)
    share = np.where(right_main, 1.0 - reading.weight, reading.weight)
    mixed = reading.reached & (share > MIX_TOLERANCE) & (partner != main)  # rounding noise is no mix
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
