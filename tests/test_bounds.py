"""Completion bounds (core/bounds.py) against brute-force completions on small markets generated here."""

from __future__ import annotations

import numpy as np
import pytest

from modelarb.core.bounds import CLOSE_TOLERANCE, CompletionBound, Target
from modelarb.core.exact import exact_search
from modelarb.core.exact_curves import Breakpoints, cascade_instances, evaluate_cascades
from modelarb.core.hull import lower_hull
from modelarb.data.outcomes import Outcomes
from test_exact import random_market
from test_search_scale import leaderboard


def _prefixes(outcomes: Outcomes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every one-stage prefix (provider, cap at each breakpoint): provider, cap, solve, spend, unsolved (K, I)."""
    providers, caps = [], []
    for p in range(outcomes.n_providers):
        step = Breakpoints.of(outcomes, p)
        providers += [p] * step.caps.size
        caps += step.caps.tolist()
    providers_, caps_ = np.array(providers), np.array(caps)
    fail = np.empty((len(caps_), outcomes.n_instances))
    solve, spend = np.empty(len(caps_)), np.empty(len(caps_))
    for p in range(outcomes.n_providers):
        rows = np.flatnonzero(providers_ == p)
        solved, stage_spend = cascade_instances(outcomes, [p], caps_[rows, None])
        fail[rows] = 1.0 - solved
        solve[rows], spend[rows] = solved.mean(axis=1), stage_spend.sum(axis=1).mean(axis=1)
    return providers_, caps_, solve, spend, fail


def _market(kind: str, seed: int) -> Outcomes:
    """Up to 5 attempts a cell with costs rounded to cents ("random"), or a leaderboard of one attempt a cell or
    three ("multi")."""
    if kind == "random":
        return random_market(seed, instances=10, providers=4, attempts=5)
    return leaderboard(4, 12, seed, 1 if kind == "leaderboard" else 3)


def _target(outcomes: Outcomes, scale: float, top_share: float) -> Target:
    """A target below the best two-stage cascades (scaled down, so that some completions beat it), with lines past
    a `top` at `top_share` of its reach, from a floor under it."""
    result = exact_search(outcomes, np.array([0.5]), max_depth=2)
    found = evaluate_cascades(outcomes, result.cascades[0].providers, np.array([result.cascades[0].caps]))
    points = [(0.0, 0.0), (float(found.solve[0]), scale * float(found.spend[0]))]
    for p in range(outcomes.n_providers):  # every provider alone at each cap
        step = Breakpoints.of(outcomes, p)
        solve, spend = step.sweep(np.ones((1, outcomes.n_instances)))
        points += list(zip(solve[0].tolist(), (scale * spend[0]).tolist(), strict=True))
    solve_, spend_ = np.array(points).T
    vertices = lower_hull(solve_, spend_)
    hull_solve, hull_spend = solve_[vertices], spend_[vertices]
    top = top_share * hull_solve[-1]
    return Target(hull_solve, hull_spend, top, 0.5 * float(np.interp(top, hull_solve, hull_spend)))


CASES = [
    ("leaderboard", 0, 1.0, 1.0),
    ("leaderboard", 1, 0.7, 0.8),
    ("leaderboard", 4, 0.9, 0.7),
    ("multi", 0, 0.8, 0.9),
    ("multi", 2, 1.0, 0.9),
    ("random", 1, 0.8, 0.9),
    ("random", 4, 1.0, 0.9),
]


@pytest.mark.parametrize(("kind", "seed", "scale", "top_share"), CASES)
def test_a_slack_at_or_above_zero_never_hides_a_completion_below_the_target(
    kind: str, seed: int, scale: float, top_share: float
) -> None:
    """Every prefix whose slack (the least rate over all unused providers, one stage left) is at or above 0 has no
    one-stage completion (any unused provider, any cap) below T."""
    outcomes = _market(kind, seed)
    target = _target(outcomes, scale, top_share)
    bound = CompletionBound.of(outcomes)
    providers, caps, solve, spend, fail = _prefixes(outcomes)
    is_open = np.zeros(len(caps), dtype=bool)
    for p in range(outcomes.n_providers):
        rows, used = np.flatnonzero(providers == p), np.array([p])
        is_open[rows] = bound.slack(solve[rows], spend[rows], fail[rows], used, 1, target) < -CLOSE_TOLERANCE
    beaten = _beaten(outcomes, providers, caps, solve, spend, target)
    assert not np.any(beaten & ~is_open), "a prefix with no slack below 0 has a completion below the target"
    assert np.any(beaten), "no completion beats the target: the check would be empty"


def _beaten(
    outcomes: Outcomes, providers: np.ndarray, caps: np.ndarray, solve: np.ndarray, spend: np.ndarray, target: Target
) -> np.ndarray:
    """Which one-stage prefixes lie below T, or have a one-stage completion (any other provider, any cap) below T."""
    beaten = spend < target.at(solve) * (1 - 1e-9)
    for k in range(len(caps)):
        for q in range(outcomes.n_providers):
            if q == providers[k]:
                continue
            step = Breakpoints.of(outcomes, q)
            both = np.c_[np.full(step.caps.size, caps[k]), step.caps]
            names = [outcomes.providers[providers[k]], outcomes.providers[q]]
            completed = evaluate_cascades(outcomes, names, both)
            beaten[k] |= bool(np.any(completed.spend < target.at(completed.solve) * (1 - 1e-9)))
    return beaten


@pytest.mark.parametrize("seed", range(8))
def test_slack_is_never_above_the_least_of_the_bound_curve_beyond_the_top(seed: int) -> None:
    """Where T is not convex (beyond the highest level asked for) the slack still lies at or below
    min over δ ≤ most of (S + L(δ) − T(R + δ)) / S, read on a fine grid of δ and at L's breakpoints."""
    rng = np.random.default_rng(seed)
    outcomes = leaderboard(6, 30, seed=seed, attempts=2)
    bound = CompletionBound.of(outcomes)
    fail = rng.random((100, outcomes.n_instances)) * (rng.random((100, outcomes.n_instances)) < 0.7)
    solve, spend = rng.random(100) * 0.5, rng.random(100) * 0.01 + 1e-4
    points = rng.random((30, 2)) * [1.0, 0.05]
    x, y = np.append(0.0, points[:, 0]), np.append(0.0, points[:, 1])
    vertices = lower_hull(x, y)
    top = float(rng.uniform(0.2, 0.7))
    floor = float(rng.uniform()) * float(np.interp(top, x[vertices], y[vertices]))  # at most H(top)
    target = Target(x[vertices], y[vertices], top, floor)
    assert target.convex_to < np.inf
    none = np.zeros(0, np.int64)
    for remaining in (1, 3):
        slack = bound.slack(solve, spend, fail, none, remaining, target)
        delta, least, most, _ = bound._curves(fail, none, remaining)
        for k in range(len(solve)):
            d = np.union1d(np.linspace(0, most[k], 2001), delta[k][delta[k] <= most[k]])
            curve = spend[k] + np.interp(d, delta[k], least[k]) - target.at(solve[k] + d)
            assert slack[k] <= curve.min() / spend[k] + 1e-9
