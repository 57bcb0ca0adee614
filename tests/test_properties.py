"""Property tests of the exact scheme on small random markets generated here (METHOD §3–4)."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from modelarb.core.exact import exact_search
from modelarb.core.exact_curves import evaluate_cascades, provider_cost_curves, provider_curves, provider_hull
from modelarb.core.hull import lower_hull, read_hull
from modelarb.core.passk import attempts_within
from modelarb.data.outcomes import Outcomes

COSTS = (0.1, 0.2, 0.25, 0.3, 0.5)  # shared values make cap ties across instances likely


@st.composite
def markets(draw: st.DrawFn, providers: tuple[int, int] = (2, 3), instances: int = 6, attempts: int = 6) -> Outcomes:
    """A market of 2–3 providers on 2–`instances` instances with 1–`attempts` recorded attempts per cell."""
    n_p = draw(st.integers(*providers))
    n_i = draw(st.integers(2, instances))
    cells = [draw(st.tuples(st.integers(1, attempts), st.floats(0, 1))) for _ in range(n_i * n_p)]
    n = np.array([c[0] for c in cells]).reshape(n_i, n_p)
    s = np.array([int(f * (m + 1)) if f < 1 else m for m, f in cells]).reshape(n_i, n_p)
    cost = np.array([draw(st.sampled_from(COSTS) | st.floats(0.01, 1.0)) for _ in cells]).reshape(n_i, n_p)
    return Outcomes(
        instances=np.array([f"i{k}" for k in range(n_i)]),
        providers=tuple(f"p{k}" for k in range(n_p)),
        n=n,
        s=s,
        cost=cost,
    )


def brute_force(outcomes: Outcomes, order: list[int], caps: list[float]) -> tuple[float, list[float]]:
    """Mean solve and mean spend per stage by enumerating every ordered draw of recorded attempts.

    On each instance, stage m draws k_m of the n recorded attempts without replacement, in
    every possible order, buying until a success; past the recorded ones every attempt
    fails (only reachable when none succeeded). Exact rational arithmetic throughout.
    """
    solve, spend = Fraction(0), [Fraction(0)] * len(order)
    for i in range(outcomes.n_instances):
        reach = Fraction(1)
        for m, (p, cap) in enumerate(zip(order, caps, strict=True)):
            n, s, c = int(outcomes.n[i, p]), int(outcomes.s[i, p]), Fraction(float(outcomes.cost[i, p]))
            k = int(attempts_within(cap, float(outcomes.cost[i, p])))
            recorded = [True] * s + [False] * (n - s)
            draws = list(itertools.permutations(range(n), min(k, n)))
            solved, bought = 0, Fraction(0)
            for draw in draws:
                for used, index in enumerate(draw, start=1):
                    if recorded[index]:
                        solved += 1
                        bought += used * c
                        break
                else:
                    bought += k * c
            spend[m] += reach * bought / len(draws)
            solve += reach * Fraction(solved, len(draws))
            reach *= Fraction(len(draws) - solved, len(draws))
    return float(solve / outcomes.n_instances), [float(x / outcomes.n_instances) for x in spend]


def candidate_caps(outcomes: Outcomes, p: int) -> np.ndarray:
    """Zero, every k · c_ip up to k = n + 1 on every instance (breakpoints or not), and every midpoint."""
    cells = zip(outcomes.n[:, p], outcomes.cost[:, p], strict=True)
    steps = np.unique(np.concatenate([c * np.arange(n + 2) for n, c in cells]))
    return np.unique(np.concatenate([steps, (steps[1:] + steps[:-1]) / 2]))


def search_levels(outcomes: Outcomes, count: int = 40) -> np.ndarray:
    best = float((outcomes.s > 0).mean(axis=0).max())
    return np.linspace(best / count, best, count) if best > 0 else np.array([])


@settings(max_examples=60, deadline=None)
@given(markets(), st.data())
def test_cascade_evaluation_matches_brute_force(outcomes: Outcomes, data: st.DataObject) -> None:
    order = data.draw(st.permutations(range(outcomes.n_providers)))
    caps = [data.draw(st.sampled_from([0.0, *candidate_caps(outcomes, p)[1:]]) | st.floats(0, 3)) for p in order]
    values = evaluate_cascades(outcomes, [outcomes.providers[p] for p in order], [caps])
    solve, spend = brute_force(outcomes, list(order), caps)
    assert abs(values.solve[0] - solve) < 1e-9
    np.testing.assert_allclose(values.stage_spend[0], spend, rtol=0, atol=1e-9)
    assert abs(values.spend[0] - sum(spend)) < 1e-9


@settings(max_examples=60, deadline=None)
@given(markets())
def test_provider_price_is_non_decreasing_and_convex(outcomes: Outcomes) -> None:
    for p in range(outcomes.n_providers):
        best = float((outcomes.s[:, p] > 0).mean())
        if best == 0:
            continue
        u = np.linspace(0, best, 201)[1:]
        cost = provider_cost_curves(outcomes, u)[p]
        assert np.all(np.isfinite(cost)) and np.all(cost > 0)
        assert np.all(np.diff(cost) >= -1e-12)
        assert np.all(np.diff(cost, 2) >= -1e-9 * cost.max())
        assert np.isinf(provider_cost_curves(outcomes, np.array([best + 1e-6]))[p, 0])


@settings(max_examples=60, deadline=None)
@given(markets())
def test_one_stage_cascade_is_its_provider(outcomes: Outcomes) -> None:
    levels = search_levels(outcomes)
    assume(levels.size > 0)
    for p, name in enumerate(outcomes.providers):
        caps = candidate_caps(outcomes, p)
        values = evaluate_cascades(outcomes, [name], caps[:, None])
        solve, spend = provider_curves(outcomes, caps)
        np.testing.assert_allclose(values.solve, solve[p], rtol=0, atol=1e-12)
        np.testing.assert_allclose(values.spend, spend[p], rtol=0, atol=1e-12)
        hull_solve, hull_spend, hull_caps = provider_hull(outcomes, p)
        at_vertices = evaluate_cascades(outcomes, [name], hull_caps[:, None])
        np.testing.assert_allclose(at_vertices.solve, hull_solve, rtol=0, atol=1e-12)
        np.testing.assert_allclose(at_vertices.spend, hull_spend, rtol=0, atol=1e-12)
        alone = exact_search(outcomes, levels, orders=[[name]])
        np.testing.assert_allclose(alone.arbitrage_cost, alone.provider_costs[p], rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(markets(), st.data())
def test_zero_caps_drop_stages(outcomes: Outcomes, data: st.DataObject) -> None:
    order = data.draw(st.permutations(range(outcomes.n_providers)))
    caps = [data.draw(st.sampled_from([0.0, 0.0, 0.3, 1.0]) | st.floats(0, 2)) for _ in order]
    kept = [m for m, cap in enumerate(caps) if cap > 0]
    full = evaluate_cascades(outcomes, [outcomes.providers[p] for p in order], [caps])
    dropped = evaluate_cascades(outcomes, [outcomes.providers[order[m]] for m in kept], [[caps[m] for m in kept]])
    assert abs(full.solve[0] - (dropped.solve[0] if kept else 0.0)) < 1e-12
    assert abs(full.spend[0] - (dropped.spend[0] if kept else 0.0)) < 1e-12
    assert np.all(full.stage_spend[0, [m for m in range(len(order)) if m not in kept]] == 0)


@settings(max_examples=40, deadline=None)
@given(markets())
def test_margins_and_spend_split(outcomes: Outcomes) -> None:
    levels = search_levels(outcomes)
    assume(levels.size > 0)
    result = exact_search(outcomes, levels)
    assert "exhaustive" in result.method
    assert np.all(result.margin >= 0) and np.all(result.margin < 1)
    assert np.all(result.arbitrage_cost <= result.market_price * (1 + 1e-12))
    np.testing.assert_allclose(result.spend.sum(axis=1), result.arbitrage_cost, rtol=1e-9, atol=1e-12)
    assert result.partner_weight is not None and result.partner_at is not None
    assert np.all((result.partner_weight >= 0) & (result.partner_weight <= 0.5))
    assert np.all((result.partner_at >= 0) == (result.partner_weight > 0))


@settings(max_examples=40, deadline=None)
@given(markets(providers=(3, 3)), st.data())
def test_adding_a_provider_never_raises_the_arbitrage_cost(outcomes: Outcomes, data: st.DataObject) -> None:
    dropped = data.draw(st.sampled_from(outcomes.providers))
    smaller = outcomes.select([p for p in outcomes.providers if p != dropped])
    levels = search_levels(smaller)
    assume(levels.size > 0)
    full, part = exact_search(outcomes, levels), exact_search(smaller, levels)
    assert np.all(full.arbitrage_cost <= part.arbitrage_cost * (1 + 1e-12) + 1e-15)


@settings(max_examples=30, deadline=None)
@given(markets(providers=(3, 3), instances=4, attempts=4), st.sampled_from([1, 2, 5]))
def test_beam_search_never_beats_the_exhaustive_one(outcomes: Outcomes, bins: int) -> None:
    levels = search_levels(outcomes)
    assume(levels.size > 0)
    exhaustive, beam = exact_search(outcomes, levels), exact_search(outcomes, levels, beam_width=bins)
    assert "beam search" in beam.method and "exhaustive" in exhaustive.method
    assert np.all(beam.arbitrage_cost >= exhaustive.arbitrage_cost * (1 - 1e-12))


def brute_force_hull(outcomes: Outcomes) -> tuple[np.ndarray, np.ndarray]:
    """The lower hull over every order and every cap vector drawn from `candidate_caps`."""
    solves, spends = [np.zeros(1)], [np.zeros(1)]
    for order in itertools.permutations(range(outcomes.n_providers)):
        grid = np.stack(np.meshgrid(*[candidate_caps(outcomes, p) for p in order], indexing="ij"), axis=-1)
        values = evaluate_cascades(outcomes, [outcomes.providers[p] for p in order], grid.reshape(-1, len(order)))
        solves.append(values.solve)
        spends.append(values.spend)
    solve, spend = np.concatenate(solves), np.concatenate(spends)
    vertices = lower_hull(solve, spend)
    return solve[vertices], spend[vertices]


@settings(max_examples=25, deadline=None)
@given(st.one_of(markets(providers=(2, 2)), markets(providers=(3, 3), instances=3, attempts=3)))
def test_breakpoint_caps_find_the_optimum_over_all_caps(outcomes: Outcomes) -> None:
    """The search only tries caps k · c_ip of instances with a success, k ≤ n − s + 1; the brute
    force also tries those of hopeless instances, k up to n + 1, and every cap in between."""
    hull_solve, hull_spend = brute_force_hull(outcomes)
    levels = np.unique(np.concatenate([hull_solve[1:], np.linspace(0, hull_solve[-1], 60)[1:]]))
    result = exact_search(outcomes, levels)
    expected = read_hull(hull_solve, hull_spend, levels).cost
    np.testing.assert_allclose(result.arbitrage_cost, expected, rtol=1e-9, atol=1e-12)
    assert np.isinf(exact_search(outcomes, np.array([hull_solve[-1] + 1e-6])).arbitrage_cost[0])
