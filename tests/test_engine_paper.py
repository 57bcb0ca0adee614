"""The paper's scheme: reference numbers of issue 3 on the released data, and grid properties on synthetic markets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from modelarb.core import paper
from modelarb.core.grid import (
    BudgetGrid,
    cascade_curves,
    cascade_spend,
    cost_for_solve_rate,
    expected_spend,
    interpolate_log,
    pass_curves,
    stage_spend,
)
from modelarb.core.passk import failure_probability
from modelarb.core.result import ArbitrageResult
from modelarb.core.search import search
from modelarb.data import Outcomes, load_market

Array = NDArray[np.float64]
PAIR = ["gpt5mini", "deepseek"]
FOUR = ["minicoder4b", "qwen3-coder-30b", "gpt5mini", "deepseek"]


# --- reference numbers (issue 3), paper scheme on the released SWE-bench data ---


@pytest.fixture
def swebench(paper_data: Path) -> Path:
    return paper_data / "swebench"


@pytest.fixture
def pair_result(swebench: Path) -> ArbitrageResult:
    outcomes, _ = load_market(swebench, PAIR)
    best = paper.best_solve_rate(outcomes, paper.PaperSettings.for_unit(outcomes.unit).market_grid)
    return search(outcomes, np.linspace(0.68, best, 1000), "paper")


def _at(result: ArbitrageResult, u: float) -> int:
    return int(np.abs(result.levels - u).argmin())


@pytest.mark.data
def test_pair_caps_chosen_by_mean_margin(pair_result: ArbitrageResult) -> None:
    (cascade,) = pair_result.cascades
    assert cascade.providers == tuple(PAIR)
    assert cascade.caps == pytest.approx((0.081, 0.919), abs=0.002)
    assert set(pair_result.cascade_at.tolist()) == {0}


@pytest.mark.data
@pytest.mark.parametrize(("u", "margin"), [(0.70, 0.125), (0.72, 0.228), (0.74, 0.267)])
def test_pair_margin_at_levels(pair_result: ArbitrageResult, u: float, margin: float) -> None:
    assert pair_result.margin[_at(pair_result, u)] == pytest.approx(margin, abs=0.01)


@pytest.mark.data
def test_pair_maximum_margin(pair_result: ArbitrageResult) -> None:
    k = int(pair_result.margin.argmax())
    assert pair_result.max_margin == pytest.approx(0.411, abs=0.01)
    assert pair_result.max_margin_at == pytest.approx(0.755, abs=0.002)
    assert pair_result.market_price[k] == pytest.approx(0.303, rel=0.03)
    assert pair_result.arbitrage_cost[k] == pytest.approx(0.179, rel=0.03)


@pytest.mark.data
def test_pair_cheapest_provider_switches_near_071(pair_result: ArbitrageResult) -> None:
    cheapest = np.array(pair_result.providers)[pair_result.cheapest]
    levels = pair_result.levels
    assert set(cheapest[levels < 0.70]) == {"gpt5mini"}
    assert set(cheapest[levels > 0.72]) == {"deepseek"}
    switch = levels[np.argmax(cheapest == "deepseek")]
    assert 0.70 <= switch <= 0.72


@pytest.mark.data
def test_pair_spend_by_provider_adds_up_to_arbitrage_cost(pair_result: ArbitrageResult) -> None:
    finite = np.isfinite(pair_result.arbitrage_cost)
    assert finite.all()
    np.testing.assert_allclose(pair_result.spend.sum(axis=1), pair_result.arbitrage_cost, rtol=1e-9)


@pytest.mark.data
def test_four_provider_market_beats_the_pair(swebench: Path) -> None:
    """Six-model market, its four never-dominated providers: 56.3% on the 20-point grid, the pair 45.5%."""
    outcomes, _ = load_market(swebench, FOUR)
    settings_ = paper.PaperSettings.for_unit(outcomes.unit)
    levels = np.linspace(0.40, paper.best_solve_rate(outcomes, settings_.market_grid), 100)
    four = paper.grid_search(outcomes, levels, settings_.stage_caps(4), "per_level", settings_.grid)
    pair = paper.grid_search(outcomes.select(PAIR), levels, settings_.stage_caps(2), "per_level", settings_.grid)
    assert four.max_margin == pytest.approx(0.563, abs=0.01)
    assert pair.max_margin == pytest.approx(0.455, abs=0.01)
    assert np.all(four.arbitrage_cost <= pair.arbitrage_cost * (1 + 1e-9))


# --- grid properties on small synthetic markets ---


@st.composite
def markets(draw: st.DrawFn, providers: int | None = None, low_cost: float = 0.01) -> Outcomes:
    """A random market: 1–6 instances, 1–3 providers (or `providers`), up to 8 attempts a cell."""
    n_inst = draw(st.integers(1, 6))
    n_prov = providers or draw(st.integers(1, 3))
    shape = (n_inst, n_prov)
    n = np.array(draw(st.lists(st.integers(1, 8), min_size=n_inst * n_prov, max_size=n_inst * n_prov)))
    frac = np.array(draw(st.lists(st.floats(0, 1), min_size=n.size, max_size=n.size)))
    s = np.floor(frac * (n + 1)).clip(0, n).astype(np.int64)
    cost = np.array(draw(st.lists(st.floats(low_cost, 0.2), min_size=n.size, max_size=n.size)))
    return Outcomes(
        instances=np.array([f"i{k}" for k in range(n_inst)]),
        providers=tuple(f"p{k}" for k in range(n_prov)),
        n=n.reshape(shape),
        s=s.reshape(shape),
        cost=cost.reshape(shape),
    )


def cap_vectors(stages: int, rows: int = 6) -> st.SearchStrategy[Array]:
    """Cap vectors mixing zeros, grid budgets and arbitrary values; each also with its last cap changed."""
    value = st.one_of(st.just(0.0), st.sampled_from([1e-3, 0.01, 0.05, 0.3]), st.floats(1e-4, 1.0))
    vector = st.lists(value, min_size=stages, max_size=stages)
    return st.lists(vector, min_size=1, max_size=rows).map(
        lambda r: np.array(r + [[*v[:-1], 0.2] for v in r], dtype=float)
    )


def naive_cascade(curves: Array, budgets: Array, caps: Array) -> tuple[Array, NDArray[np.int64]]:
    """One cascade at a time, straight from METHOD §5.3: every stage read at min(τ_m, max(b − o_m, 0))."""
    fail = 1.0 - curves
    solve = np.empty((len(caps), len(budgets)))
    stage_at = np.full((len(caps), len(budgets)), -1)
    for k, cap in enumerate(caps):
        offsets = np.concatenate([[0.0], np.cumsum(cap)[:-1]])
        failure = np.ones((curves.shape[0], len(budgets)))
        for m in range(len(cap)):
            x = np.minimum(cap[m], np.maximum(budgets - offsets[m], 0.0))
            failure *= interpolate_log(fail[:, m, :], budgets, x, below=1.0)
            stage_at[k, (budgets > offsets[m]) & (budgets <= offsets[m] + cap[m])] = m
        solve[k] = 1.0 - failure.mean(axis=0)
    return solve, stage_at


@settings(max_examples=60, deadline=None)
@given(market=markets(), data=st.data())
def test_prefix_shared_cascades_match_naive_evaluation(market: Outcomes, data: st.DataObject) -> None:
    budgets = BudgetGrid(1e-3, 1.0, 40).budgets
    curves = pass_curves(market, budgets)
    caps = data.draw(cap_vectors(market.n_providers))
    solve, stage_at = cascade_curves(curves, budgets, caps)
    want_solve, want_stage = naive_cascade(curves, budgets, caps)
    np.testing.assert_allclose(solve, want_solve, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(stage_at, want_stage)


@settings(max_examples=40, deadline=None)
@given(market=markets(providers=2), cap=st.floats(1e-4, 1.0))
def test_zero_first_cap_is_the_second_provider_alone(market: Outcomes, cap: float) -> None:
    budgets = BudgetGrid(1e-3, 1.0, 60).budgets
    curves = pass_curves(market, budgets)
    single = curves[:, 1, :].mean(axis=0)
    (solve,), (stage_at,) = cascade_curves(curves, budgets, np.array([[0.0, cap]]))
    within = budgets <= cap
    np.testing.assert_allclose(solve[within], single[within], atol=1e-12)
    np.testing.assert_allclose(solve[~within], interpolate_log(single, budgets, np.array([cap]))[0], atol=1e-12)
    np.testing.assert_array_equal(stage_at, np.where(within, 1, -1))


@settings(max_examples=40, deadline=None)
@given(market=markets(providers=2), cap=st.floats(1e-4, 1.0))
def test_zero_last_cap_drops_the_stage(market: Outcomes, cap: float) -> None:
    budgets = BudgetGrid(1e-3, 1.0, 60).budgets
    curves = pass_curves(market, budgets)
    with_stage, _ = cascade_curves(curves, budgets, np.array([[cap, 0.0]]))
    alone, _ = cascade_curves(curves[:, :1, :], budgets, np.array([[cap]]))
    np.testing.assert_allclose(with_stage, alone, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(st.floats(0.0, 0.2), min_size=8, max_size=8))
def test_expected_spend_integrates_the_log_linear_curve(steps: list[float]) -> None:
    """E(b) against a fine trapezoid rule on the curve the scheme assumes: linear in log b between grid points."""
    budgets = BudgetGrid(1e-3, 1.0, 8).budgets
    solve = np.minimum(np.cumsum(steps), 1.0)
    spend = expected_spend(solve, budgets)
    assert spend[0] == pytest.approx(budgets[0] * (1 - solve[0] / 2), rel=1e-12)
    x = np.logspace(-3, 0, 200_001)
    unsolved = 1.0 - interpolate_log(solve, budgets, x)
    running = np.concatenate([[0.0], np.cumsum(np.diff(x) * (unsolved[1:] + unsolved[:-1]) / 2)])
    np.testing.assert_allclose(spend - spend[0], np.interp(budgets, x, running), rtol=1e-7, atol=1e-12)


def exact_spend(market: Outcomes, cap: float) -> float:
    """∫_0^cap of the true step curve F(floor(x / c)), averaged: c Σ_{j<k} F(j) + (cap − k c) F(k)."""
    n, s, c = market.n[:, 0], market.s[:, 0], market.cost[:, 0]
    k = np.floor(cap / c * (1 + 1e-12))
    j = np.arange(int(k.max()) + 1)[None, :]
    fail = failure_probability(n[:, None], s[:, None], j)
    bought = np.where(j < k[:, None], fail, 0.0).sum(axis=1)
    return float(np.mean(c * bought + (cap - k * c) * failure_probability(n, s, k)))


@settings(max_examples=40, deadline=None)
@given(market=markets(providers=1, low_cost=0.002), points=st.sampled_from([500, 4000]), at=st.floats(0.05, 1.0))
def test_single_provider_spend_approaches_the_exact_sum(market: Outcomes, points: int, at: float) -> None:
    """The scheme errs only in grid cells where the true step curve jumps: |error| ≤ b (e^Δ − 1), Δ the log step."""
    grid = BudgetGrid(1e-3, 1.0, points)
    budgets = grid.budgets
    solve = pass_curves(market, budgets).mean(axis=0)
    spend = expected_spend(solve, budgets)[0]
    g = int(np.searchsorted(budgets, at))
    bound = budgets[g] * np.expm1(np.log(budgets[1] / budgets[0]))
    assert abs(spend[g] - exact_spend(market, budgets[g])) <= bound + 1e-12


@settings(max_examples=40, deadline=None)
@given(market=markets(), data=st.data())
def test_stage_spends_add_up_to_the_cascade_spend(market: Outcomes, data: st.DataObject) -> None:
    budgets = BudgetGrid(1e-3, 1.0, 40).budgets
    caps = data.draw(cap_vectors(market.n_providers))
    solve, stage_at = cascade_curves(pass_curves(market, budgets), budgets, caps)
    total = cascade_spend(solve, budgets, stage_at)
    np.testing.assert_allclose(stage_spend(solve, budgets, stage_at, market.n_providers).sum(axis=1), total, atol=1e-12)
    covered = (stage_at >= 0).all(axis=1)
    np.testing.assert_allclose(total[covered], expected_spend(solve[covered], budgets), rtol=1e-12)
    assert np.all(np.diff(total, axis=1) >= -1e-15)


def naive_cost(solve: Array, spend: Array, levels: Array) -> Array:
    """C(u) one curve and one level at a time: last grid point with P ≤ u, then log E linear in P."""
    out = np.empty((len(solve), len(levels)))
    for k in range(len(solve)):
        p = np.maximum.accumulate(solve[k])
        for q, u in enumerate(levels):
            idx = int(np.searchsorted(p, u, side="right")) - 1
            j = min(max(idx, 0), len(p) - 2)
            t = 0.0 if idx < 0 or p[j + 1] <= p[j] else min(max((u - p[j]) / (p[j + 1] - p[j]), 0.0), 1.0)
            log_e = np.log(np.maximum(spend[k, [j, j + 1]], 1e-300))
            out[k, q] = np.inf if u > p[-1] + 1e-12 else np.exp(log_e[0] + t * (log_e[1] - log_e[0]))
    return out


@settings(max_examples=40, deadline=None)
@given(market=markets(), levels=st.lists(st.floats(1e-3, 1.0), min_size=1, max_size=12))
def test_cost_for_solve_rate_matches_a_level_by_level_reading(market: Outcomes, levels: list[float]) -> None:
    budgets = BudgetGrid(1e-3, 1.0, 30).budgets
    solve = pass_curves(market, budgets).mean(axis=0)
    spend = expected_spend(solve, budgets)
    u = np.array(levels)  # unsorted, with repeats possible
    np.testing.assert_allclose(cost_for_solve_rate(solve, spend, u), naive_cost(solve, spend, u), rtol=1e-12)


@settings(max_examples=25, deadline=None)
@given(market=markets(providers=2))
def test_margins_lie_in_unit_interval_and_caps_of_grid_search_are_searched(market: Outcomes) -> None:
    settings_ = paper.PaperSettings.for_unit(market.unit)
    best = paper.best_solve_rate(market, settings_.market_grid)
    if best <= 0:
        return
    levels = np.linspace(best / 2, best, 7)
    caps = settings_.pair_caps()
    result = paper.grid_search(market, levels, caps, "per_level", settings_.grid)
    assert np.all((result.margin >= 0) & (result.margin < 1))
    # per level, no cap vector is cheaper than the one chosen
    solve, stage_at = cascade_curves(pass_curves(market, settings_.grid.budgets), settings_.grid.budgets, caps)
    every = cost_for_solve_rate(solve, cascade_spend(solve, settings_.grid.budgets, stage_at), levels)
    np.testing.assert_allclose(result.arbitrage_cost, every.min(axis=0), rtol=1e-12)
