"""`plan fit --robust`: the cascade whose cross-validated margin is best, not the in-sample optimum.

The exact search tunes every cap to the very instances it scores; on new instances that
cascade may earn far less (METHOD §4 optimises in sample). Here the plan is chosen among
fitting procedures by how they do out of sample:

1. Candidate structures come from the in-sample hull near the target u: the provider
   orders of the cascades (and mixes) the exact search uses at solve rates within
   `BAND` of u, nearest first, at most `MAX_ORDERS` of them.
2. Each order is fitted in several ways: with exact caps (every breakpoint; the order's
   sub-orders too) on its first `EXACT_STAGES` stages and on its first two; and with caps
   quantised to `G` log-spaced values per stage (plus 0, which drops the stage), G in
   `QUANTISATIONS`, from a provider's cheapest attempt to its saturation cap (every failure
   of a solvable instance bought, one attempt more), on the longest prefix of the order
   whose combinations number at most `MAX_GRID_CASCADES`, all searched exactly and mixed on
   their lower convex hull. Coarser caps and fewer stages are the regularisation: fewer
   free parameters to tune to the instances. The unrestricted exact search (the in-sample
   optimum) is candidate zero.
3. Each candidate is scored by k-fold cross-validation over instances (`holdout`): its
   caps are refitted on k − 1 folds and the plan served unchanged on the held-out fold,
   with caps at the middle of their intervals as a live plan has them; margin against
   the held-out fold's own market price at the solve rate reached (like the in-sample
   margin beside it, not floored at 0). A candidate that cannot reach the target on some
   training folds is dropped.
4. The best mean cross-validated margin wins (ties: the earlier candidate, so the
   in-sample optimum first); its caps are refitted on all instances.

The folds come from a seeded shuffle, so the choice is deterministic. The structures are
read off the hull of all instances, so the held-out folds have seen them (not their
caps), and the winner's cross-validated margin is the best of several: both make it
somewhat optimistic. `plan evaluate` on instances never used is the unbiased check.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from modelarb.core.cascade import Cascade
from modelarb.core.exact import MIX_TOLERANCE, exact_search
from modelarb.core.exact_curves import evaluate_cascades, provider_cost_curves
from modelarb.core.holdout import DEFAULT_FOLDS, CrossValidated, Validation, cross_validate, serve_plan
from modelarb.core.hull import lower_hull, read_hull
from modelarb.core.plan import Plan, plan_at
from modelarb.core.result import ArbitrageResult
from modelarb.core.search import best_solve_rate, check_levels, search
from modelarb.data.outcomes import Outcomes
from modelarb.errors import AnalysisError

Array = NDArray[np.float64]

BAND = 0.05  # hull orders are read at solve rates within this of the target
BAND_LEVELS = 21
MAX_ORDERS = 4
QUANTISATIONS = (16, 6, 3)  # cap values per stage of the quantised candidates, finest first
MAX_GRID_CASCADES = 20_000  # combinations of quantised caps searched per candidate
EXACT_STAGES = 3  # exact caps are searched over an order's first stages only (branch and bound proves them)


@dataclass(frozen=True)
class Candidate:
    """A way to fit a cascade: any order (`order` None) or one order, exact caps (`caps_per_stage` None) or
    that many log-spaced caps per stage."""

    order: tuple[str, ...] | None
    caps_per_stage: int | None

    @property
    def label(self) -> str:
        order = "any order" if self.order is None else " → ".join(self.order)
        caps = "exact caps" if self.caps_per_stage is None else f"{self.caps_per_stage} caps per stage"
        return f"{order}, {caps}"

    def result(self, outcomes: Outcomes, level: float) -> ArbitrageResult:
        """The cheapest cascade or mix of this kind at solve rate `level` on `outcomes` (one level)."""
        levels = np.array([level])
        if self.caps_per_stage is None:
            orders = None if self.order is None else [self.order]
            return exact_search(outcomes, levels, orders=orders)
        assert self.order is not None
        return quantised_search(outcomes, levels, self.order, self.caps_per_stage)

    def plan(self, outcomes: Outcomes, level: float) -> Plan:
        """The candidate's plan at `level`; an AnalysisError when it cannot reach it."""
        result = self.result(outcomes, level)
        if result.cascade_at[0] < 0:
            raise AnalysisError(f"{self.label} does not reach the solve rate {level:.4f}")
        return plan_at(result, 0, outcomes, level, None)


@dataclass(frozen=True)
class Scored:
    """A candidate and its cross-validated margin (None: it cannot reach the target on every training split)."""

    candidate: Candidate
    validated: CrossValidated | None


@dataclass(frozen=True)
class RobustFit:
    """The chosen plan (its caps refitted on all instances), the chosen candidate and the in-sample optimum."""

    plan: Plan
    chosen: Scored
    optimum: Scored
    scored: tuple[Scored, ...]


def stage_caps(outcomes: Outcomes, provider: int, points: int) -> Array:
    """0 and `points` caps log-spaced from the provider's cheapest attempt to its saturation cap."""
    cost, n, s = outcomes.cost[:, provider], outcomes.n[:, provider], outcomes.s[:, provider]
    positive = cost[cost > 0]
    if positive.size == 0:  # free attempts: one cap buys them all
        return np.array([0.0, 1.0])
    low = float(positive.min())
    need = np.where(s > 0, cost * (n - s + 1), 0.0)
    high = max(float(need.max()), low)
    return np.concatenate([[0.0], np.unique(np.geomspace(low, high, points))])


def quantised_search(outcomes: Outcomes, levels: Array, order: tuple[str, ...], points: int) -> ArbitrageResult:
    """The cheapest mix of cascades over `order` with caps from `stage_caps`, at each level (exact curves).

    The order is cut to its longest prefix whose cap combinations number at most
    MAX_GRID_CASCADES (`quantised_depth`); every combination is evaluated exactly, instance by instance.
    """
    columns = outcomes.provider_index(order)
    values = [stage_caps(outcomes, p, points) for p in columns]
    depth = quantised_depth(points, len(order))
    kept = tuple(order[:depth])
    caps = np.array(list(itertools.product(*values[:depth])))[1:]  # without the all-zero cascade
    found = evaluate_cascades(outcomes, kept, caps)
    solve = np.append(0.0, found.solve)  # the empty cascade: nothing bought, nothing solved
    spend = np.append(0.0, found.spend)
    stage = np.vstack([np.zeros((1, depth)), found.stage_spend])
    cascades = [Cascade(kept, tuple(np.zeros(depth)))] + [Cascade(kept, tuple(row)) for row in caps]
    hull = lower_hull(solve, spend)
    reading = read_hull(solve[hull], spend[hull], levels)
    right_main = reading.weight >= 0.5
    main = hull[np.where(right_main, reading.right, reading.left)]
    partner = hull[np.where(right_main, reading.left, reading.right)]
    share = np.where(right_main, 1.0 - reading.weight, reading.weight)
    mixed = reading.reached & (share > MIX_TOLERANCE) & (partner != main)
    used = np.unique(np.concatenate([main[reading.reached], partner[mixed]]))
    position = {int(k): j for j, k in enumerate(used)}
    cascade_at = np.array([position[int(k)] if ok else -1 for k, ok in zip(main, reading.reached, strict=True)])
    partner_at = np.array([position[int(k)] if ok else -1 for k, ok in zip(partner, mixed, strict=True)])
    by_stage = (1.0 - share)[:, None] * stage[main] + share[:, None] * stage[partner]  # partner = main unmixed
    spend_by_provider = np.zeros((len(levels), outcomes.n_providers))
    spend_by_provider[:, columns[:depth]] = np.where(reading.reached[:, None], by_stage, 0.0)
    return ArbitrageResult(
        providers=outcomes.providers,
        cost_unit=outcomes.unit,
        scheme="exact",
        method=(
            f"exact curves, caps quantised to {points} log-spaced values per stage (and 0) over "
            f"{' → '.join(kept)}: all {len(caps):,} combinations; lower convex hull"
        ),
        levels=levels,
        provider_costs=provider_cost_curves(outcomes, levels),
        arbitrage_cost=reading.cost,
        cascades=tuple(cascades[int(k)] for k in used),
        cascade_at=cascade_at.astype(np.int64),
        spend=spend_by_provider,
        partner_at=partner_at.astype(np.int64),
        partner_weight=np.where(mixed, share, 0.0),
    )


def hull_orders(result: ArbitrageResult, level: float) -> list[tuple[str, ...]]:
    """The provider orders of the cascades a search uses, at the levels nearest `level` first."""
    orders: list[tuple[str, ...]] = []
    for k in np.argsort(np.abs(result.levels - level), kind="stable"):
        used = [int(result.cascade_at[k])]
        if result.partner_at is not None:
            used.append(int(result.partner_at[k]))
        for index in used:
            order = result.cascades[index].active().providers if index >= 0 else ()
            if order and order not in orders:
                orders.append(order)
    return orders[:MAX_ORDERS]


def candidates(orders: list[tuple[str, ...]]) -> list[Candidate]:
    """The in-sample optimum, then per order: exact caps on its first EXACT_STAGES stages and on its first two,
    then each quantisation on its longest prefix whose combinations fit, finest first (duplicates once)."""
    found = [Candidate(None, None)]
    for order in orders:
        found += [Candidate(order[:depth], None) for depth in sorted({min(len(order), EXACT_STAGES), 2}, reverse=True)]
        found += [Candidate(order[: quantised_depth(points, len(order))], points) for points in QUANTISATIONS]
    return list(dict.fromkeys(c for c in found if c.order is None or c.order))


def quantised_depth(points: int, stages: int) -> int:
    """The most stages (at most `stages`) whose quantised caps, `points` + 1 values each, fit MAX_GRID_CASCADES."""
    depth = 1
    while depth < stages and (points + 1) ** (depth + 1) <= MAX_GRID_CASCADES:
        depth += 1
    return depth


def robust_fit(outcomes: Outcomes, target_solve_rate: float, *, folds: int = DEFAULT_FOLDS, seed: int = 0) -> RobustFit:
    """The plan for `target_solve_rate` whose fitting procedure has the best cross-validated margin (module doc)."""
    best = best_solve_rate(outcomes, "exact")
    level = float(check_levels(np.array([target_solve_rate]), best)[0])
    band = np.unique(np.append(np.linspace(max(level - BAND, 1e-9), min(level + BAND, best), BAND_LEVELS), level))
    scored = []
    for candidate in candidates(hull_orders(search(outcomes, band, "exact"), level)):
        try:
            in_sample = serve_plan(candidate.plan(outcomes, level), outcomes).margin  # not floored at 0
            checked = cross_validate(
                outcomes, level, "exact", folds=folds, seed=seed, in_sample=in_sample, fitter=candidate.plan
            )
        except AnalysisError:
            checked = None
        scored.append(Scored(candidate, checked))
    optimum = scored[0]
    if optimum.validated is None:
        raise AnalysisError(f"no cascade reaches the solve rate {level:.4f} on every training split")
    chosen = max(
        (s for s in scored if s.validated is not None),
        key=lambda s: s.validated.mean if s.validated is not None else -np.inf,
    )
    assert chosen.validated is not None
    plan = chosen.candidate.plan(outcomes, level)
    validation = Validation(
        rule=f"best mean cross-validated margin of {sum(s.validated is not None for s in scored)} candidates",
        label=chosen.candidate.label,
        chosen=chosen.validated,
        optimum=optimum.validated,
        candidates=len(scored),
    )
    method = f"robust fit ({chosen.candidate.label}, best cross-validated margin): {plan.method}"
    return RobustFit(replace(plan, method=method, validation=validation), chosen, optimum, tuple(scored))
