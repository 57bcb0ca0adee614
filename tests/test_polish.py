"""Polishing a hull of cascades (core/polish.py): one stage chosen again at a time, every point a real cascade."""

from __future__ import annotations

import numpy as np
import pytest

from modelarb.core.exact import exact_search
from modelarb.core.exact_curves import Breakpoints, evaluate_cascades, failure_and_attempts
from modelarb.core.hull import hull_cost, lower_hull
from modelarb.core.passk import attempts_within
from modelarb.core.polish import Candidates, _variants, polished, stage_sweep
from modelarb.core.search import best_solve_rate
from modelarb.data.outcomes import Outcomes
from test_exact import random_market
from test_search_scale import leaderboard


def _evaluated(outcomes: Outcomes, stages: np.ndarray, caps: np.ndarray) -> tuple[float, float]:
    used = stages >= 0
    if not used.any():
        return 0.0, 0.0
    values = evaluate_cascades(outcomes, [outcomes.providers[p] for p in stages[used]], caps[used][None, :])
    return float(values.solve[0]), float(values.spend[0])


def _effect(outcomes: Outcomes, p: int, cap: float) -> tuple[np.ndarray, np.ndarray]:
    """Per instance: the unsolved share one stage leaves, and what it spends per unit of unsolved chance."""
    k = attempts_within(cap, outcomes.cost[:, p])
    fail, attempts = failure_and_attempts(outcomes.n[:, p], outcomes.s[:, p], k)
    return fail, outcomes.cost[:, p] * attempts


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stage_sweep_equals_evaluating_each_cascade(seed: int) -> None:
    """A stage between a fixed earlier and a fixed later stage, at every cap: as evaluating each cascade."""
    outcomes = random_market(seed, instances=25, providers=4, attempts=6)
    rng = np.random.default_rng(seed)
    first, middle, last = (int(p) for p in rng.permutation(4)[:3])
    cap_first, cap_last = rng.uniform(0.01, 0.4, 2)
    step = Breakpoints.of(outcomes, middle)
    fail, spent = _effect(outcomes, first, cap_first)
    after_fail, after_spend = _effect(outcomes, last, cap_last)
    solve, spend = stage_sweep(step, fail[None, :], after_fail[None, :], after_spend[None, :])
    caps = np.c_[np.full(step.caps.size, cap_first), step.caps, np.full(step.caps.size, cap_last)]
    direct = evaluate_cascades(outcomes, [outcomes.providers[p] for p in (first, middle, last)], caps)
    before_solve, before_spend = 1.0 - fail.mean(), spent.mean()  # the first stage's own solve and spend
    np.testing.assert_allclose(before_solve + solve[0], direct.solve, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(before_spend + spend[0], direct.spend, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("attempts", [1, 5])
def test_polished_hull_holds_real_cascades_and_lies_below(attempts: int) -> None:
    """Every vertex of a polished hull is the cascade it names, evaluated directly, the hull lies at or below the
    one it started from, and only admissible sequences appear."""
    outcomes = leaderboard(6, 60, seed=3, attempts=attempts)
    steps = [Breakpoints.of(outcomes, p) for p in range(outcomes.n_providers)]
    # a poor start: each provider alone at its largest cap, padded to three stages
    stages = np.full((outcomes.n_providers + 1, 3), -1)
    caps = np.zeros((outcomes.n_providers + 1, 3))
    solve, spend = np.zeros(outcomes.n_providers + 1), np.zeros(outcomes.n_providers + 1)
    for p in range(outcomes.n_providers):
        stages[p + 1, 0], caps[p + 1, 0] = p, steps[p].caps[-1]
        solve[p + 1], spend[p + 1] = _evaluated(outcomes, stages[p + 1], caps[p + 1])
    start = Candidates(solve, spend, stages, caps)

    def admissible(sequence: tuple[int, ...]) -> bool:
        return not sequence or sequence[0] != 5  # provider 5 never first

    found, evaluated = polished(outcomes, steps, start, admissible)
    assert evaluated > 0 and len(found.solve) > 2
    for k in range(len(found.solve)):
        assert admissible(tuple(int(p) for p in found.stages[k] if p >= 0))
        assert np.all(np.diff((found.stages[k] < 0).astype(int)) >= 0)  # stages first, pads last
        solve_k, spend_k = _evaluated(outcomes, found.stages[k], found.caps[k])
        assert solve_k == pytest.approx(found.solve[k], rel=1e-12, abs=1e-15)
        assert spend_k == pytest.approx(found.spend[k], rel=1e-12, abs=1e-15)
    levels = np.linspace(0.05, found.solve.max(), 40)
    vertices = lower_hull(start.solve, start.spend)
    before = hull_cost(start.solve[vertices], start.spend[vertices], levels)
    after = hull_cost(found.solve, found.spend, levels)
    assert np.all(after <= before * (1 + 1e-12))
    assert np.any(after < before * (1 - 1e-3))


@pytest.mark.parametrize(("providers", "instances", "attempts", "seed"), [(5, 40, 1, 0), (6, 60, 1, 4), (5, 40, 3, 1)])
def test_branch_and_bound_from_a_polished_hull_equals_exhaustive_search(
    providers: int, instances: int, attempts: int, seed: int
) -> None:
    """Depth 3: the proven optimum's C(u) equals the exhaustive search's at every level (1e-9 relative)."""
    outcomes = leaderboard(providers, instances, seed, attempts)
    levels = np.linspace(0.3 * best_solve_rate(outcomes), best_solve_rate(outcomes), 60)
    exhaustive = exact_search(outcomes, levels, max_depth=3)
    proven = exact_search(outcomes, levels, max_depth=3, branch=True)
    assert "exhaustive" in exhaustive.method and proven.proven and "polished" in proven.method
    finite = np.isfinite(exhaustive.arbitrage_cost)
    assert np.array_equal(finite, np.isfinite(proven.arbitrage_cost))
    np.testing.assert_allclose(proven.arbitrage_cost[finite], exhaustive.arbitrage_cost[finite], rtol=1e-9, atol=0)


def test_moves_take_a_stage_out_and_leave_a_place_for_it_elsewhere() -> None:
    """With moves, a vertex (a, b, c) polished at position 0 also gets (_, a, c) and (_, a, b): the place left empty
    is then filled by every provider, the one taken out included, which reorders stages."""
    vertex = Candidates(np.ones(1), np.ones(1), np.array([[4, 7, 9]]), np.array([[1.0, 2.0, 3.0]]))
    plain = {tuple(s[0]) for s, _, _ in _variants(vertex, 0, moves=False)}
    moved = {tuple(s[0]) for s, _, _ in _variants(vertex, 0, moves=True)}
    assert plain == {(-1, 7, 9)}
    assert moved == {(-1, 7, 9), (-1, 4, 9), (-1, 4, 7)}


def test_a_polish_within_a_budget_stops_after_the_stage_that_crosses_it() -> None:
    """No cascade is evaluated with a budget of 0; with a small one, the polish stops early and still only lowers
    the hull."""
    outcomes = leaderboard(6, 60, seed=2)
    steps = [Breakpoints.of(outcomes, p) for p in range(6)]
    found = exact_search(outcomes, np.array([0.4]), max_depth=3, beam_width=8).cascades[0]
    stages = np.full((2, 3), -1)
    caps = np.zeros((2, 3))
    stages[1, : len(found.providers)] = outcomes.provider_index(list(found.providers))
    caps[1, : len(found.caps)] = found.caps
    solve, spend = _evaluated(outcomes, stages[1], caps[1])
    hull = Candidates(np.array([0.0, solve]), np.array([0.0, spend]), stages, caps)
    same, none = polished(outcomes, steps, hull, lambda _: True, moves=True, budget=0)
    assert none == 0 and np.array_equal(same.solve, hull.solve)
    full, everything = polished(outcomes, steps, hull, lambda _: True, moves=True)
    part, some = polished(outcomes, steps, hull, lambda _: True, moves=True, budget=everything // 4)
    assert everything // 4 <= some < everything
    x = np.linspace(0, float(full.solve.max()), 50)
    assert np.all(hull_cost(part.solve, part.spend, x) <= hull_cost(hull.solve, hull.spend, x) + 1e-12)
    assert np.all(hull_cost(full.solve, full.spend, x) <= hull_cost(part.solve, part.spend, x) + 1e-12)
