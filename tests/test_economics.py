"""Market economics on small synthetic markets: revenue, competition, segmentation, entry, distillation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from modelarb.core import paper
from modelarb.core.scales import settings_for
from modelarb.core.search import best_solve_rate
from modelarb.data import Outcomes
from modelarb.economics import (
    cascade_cost,
    compete,
    distillation,
    fit_log,
    market_arbitrage,
    market_entry,
    revenue,
    segment,
    segmentation,
    undercut,
)
from modelarb.economics.distillation import distillation_levels
from modelarb.errors import AnalysisError, DataError

Array = NDArray[np.float64]


@st.composite
def markets(draw: st.DrawFn, providers: int = 2, unit: str = "USD") -> Outcomes:
    """A random market: 2–8 instances, `providers` providers, up to 10 attempts a cell, costs 0.005–0.3."""
    n_inst = draw(st.integers(2, 8))
    size = n_inst * providers
    n = np.array(draw(st.lists(st.integers(1, 10), min_size=size, max_size=size)))
    frac = np.array(draw(st.lists(st.floats(0, 1), min_size=size, max_size=size)))
    cost = np.array(draw(st.lists(st.floats(0.005, 0.3), min_size=size, max_size=size)))
    return _market(n, np.floor(frac * (n + 1)).clip(0, n), cost, n_inst, providers, unit)


def _market(n: Array, s: Array, cost: Array, n_inst: int, providers: int, unit: str = "USD") -> Outcomes:
    shape = (n_inst, providers)
    return Outcomes(
        instances=np.array([f"i{k}" for k in range(n_inst)]),
        providers=tuple(f"p{k}" for k in range(providers)),
        n=np.asarray(n, dtype=np.int64).reshape(shape),
        s=np.asarray(s, dtype=np.int64).reshape(shape),
        cost=np.asarray(cost, dtype=float).reshape(shape),
        unit=unit,
    )


def _levels(market: Outcomes, points: int = 15) -> Array:
    best = best_solve_rate(market, "paper")
    assume(best > 0.05)
    return np.linspace(best / 3, best, points)


costs = st.floats(0.01, 10.0)


# --- revenue ---


@settings(max_examples=40, deadline=None)
@given(market=st.one_of(markets(2), markets(3)))
def test_revenue_shares_sum_to_one_at_every_level(market: Outcomes) -> None:
    result = market_arbitrage(market, _levels(market))
    earned = revenue(result)
    np.testing.assert_allclose(earned.shares_without.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(earned.shares_with.sum(axis=1), 1.0, atol=1e-9)
    assert np.all(earned.shares_with >= -1e-12) and np.all(earned.shares_without >= 0)
    # the providers keep what the arbitrageur does not take
    np.testing.assert_allclose(earned.revenue_change, 1.0 - earned.shares_with[:, -1], atol=1e-9)
    assert np.all(earned.revenue_change[~earned.arbitraged] == 1.0)


@settings(max_examples=30, deadline=None)
@given(market=markets(2))
def test_without_arbitrage_the_cheapest_provider_takes_the_market(market: Outcomes) -> None:
    result = market_arbitrage(market, _levels(market))
    earned = revenue(result)
    cheapest = np.isclose(result.provider_costs.T, result.market_price[:, None], rtol=1e-12, atol=0.0)
    np.testing.assert_allclose(earned.without.sum(axis=1), result.market_price)
    assert np.all(earned.without[~cheapest] == 0.0)  # only the cheapest (tied ones split) earn
    np.testing.assert_allclose(earned.with_arbitrage[earned.arbitraged], result.spend[earned.arbitraged])
    np.testing.assert_allclose(earned.profit, result.profit)


def test_tied_cheapest_providers_split_the_market() -> None:
    rng = np.random.default_rng(3)
    n = rng.integers(1, 9, size=(6, 1))
    s = rng.integers(0, n + 1)
    cost = rng.uniform(0.01, 0.1, size=(6, 1))
    twins = _market(np.hstack([n, n]), np.hstack([s, s]), np.hstack([cost, cost]), 6, 2)
    earned = revenue(market_arbitrage(twins, _levels_of(twins)))
    np.testing.assert_allclose(earned.shares_without, 0.5)


def _levels_of(market: Outcomes) -> Array:
    best = best_solve_rate(market, "paper")
    return np.linspace(best / 2, best, 10)


# --- competition ---


@settings(max_examples=200, deadline=None)
@given(
    price=st.lists(costs, min_size=1, max_size=12),
    ratio=st.lists(st.floats(0.05, 2.0), min_size=12, max_size=12),
    factor=st.floats(0.5, 0.99),
    rounds=st.integers(0, 40),
)
def test_undercutting_never_goes_below_the_arbitrage_cost(
    price: list[float], ratio: list[float], factor: float, rounds: int
) -> None:
    market = np.array(price)
    cost = market * np.array(ratio[: len(price)])
    race = undercut(market, cost, factor, rounds)
    selling = cost < market
    assert race.prices.shape == (rounds + 1, len(price))
    assert np.all(race.prices[:, selling] >= cost[selling] * (1 - 1e-12))
    assert np.all(race.prices[:, ~selling] == market[~selling])
    assert np.all(np.diff(race.prices, axis=0) <= 0)
    assert np.all(race.price_ratio >= factor**rounds * (1 - 1e-12))
    assert np.all(race.margins >= -1e-12)
    # the paper's race is the race between two identical arbitrageurs
    np.testing.assert_allclose(compete([cost, cost], market, ["a", "b"], factor, rounds).prices, race.prices)


@settings(max_examples=200, deadline=None)
@given(price=st.lists(costs, min_size=1, max_size=12), ratio=st.floats(0.05, 0.99), factor=st.floats(0.5, 0.99))
def test_identical_arbitrageurs_settle_at_margin_zero(price: list[float], ratio: float, factor: float) -> None:
    market = np.array(price)
    cost = market * ratio
    race = compete([cost, cost, cost], market, ["a", "b", "c"], factor)
    np.testing.assert_allclose(race.settled_price, cost)
    np.testing.assert_allclose(race.prices[-1], cost)
    np.testing.assert_allclose(race.settled_margin, 0.0, atol=1e-12)
    assert np.all(race.winner == 0)


@settings(max_examples=200, deadline=None)
@given(
    price=st.lists(costs, min_size=1, max_size=12),
    ratios=st.lists(st.lists(st.floats(0.05, 2.0), min_size=12, max_size=12), min_size=2, max_size=4),
    factor=st.floats(0.5, 0.99),
)
def test_different_arbitrageurs_settle_at_the_second_lowest_cost(
    price: list[float], ratios: list[list[float]], factor: float
) -> None:
    market = np.array(price)
    cost = market[None, :] * np.array(ratios)[:, : len(price)]
    names = [f"a{k}" for k in range(len(cost))]
    race = compete(cost, market, names, factor)
    low, second = np.sort(cost, axis=0)[:2]
    selling = low < market
    settled = np.minimum(second, market)
    np.testing.assert_allclose(race.settled_price[selling], settled[selling])
    np.testing.assert_allclose(race.settled_margin[selling], ((settled - low) / settled)[selling])
    np.testing.assert_allclose(race.prices[-1], race.settled_price)
    np.testing.assert_array_equal(race.winner[selling], cost.argmin(axis=0)[selling])
    assert np.all(race.winner[~selling] == -1) and np.all(race.settled_margin[~selling] == 0)
    assert np.all(race.prices[:, selling] >= low[selling] * (1 - 1e-12))
    assert np.all(race.prices[:, ~selling] == market[~selling])


def test_paper_race_numbers() -> None:
    race = undercut([1.0, 1.0, 1.0], [0.5, 0.8, 1.2], 0.93, 7)
    np.testing.assert_allclose(race.price_ratio[-1], [0.93**7, 0.8, 1.0])
    np.testing.assert_allclose(race.margins[-1], [1 - 0.5 / 0.93**7, 0.0, 0.0], atol=1e-12)


def test_a_lone_arbitrageur_keeps_the_market_price() -> None:
    race = compete([[0.4, 0.9]], [1.0, 1.0], ["solo"])
    np.testing.assert_allclose(race.settled_price, [1.0, 1.0])
    np.testing.assert_allclose(race.settled_margin, [0.6, 0.1])
    assert race.rounds == 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: undercut([1.0], [0.5], factor=1.0), "factor"),
        (lambda: undercut([1.0], [0.5], rounds=-1), "rounds"),
        (lambda: undercut([1.0, 2.0], [0.5], rounds=1), "same levels"),
        (lambda: compete([[0.5], [0.6]], [1.0], ["a"]), "one cost curve per arbitrageur"),
        (lambda: compete([[0.0], [0.0]], [1.0], ["a", "b"]), "zero cost"),
    ],
)
def test_competition_errors(call: object, message: str) -> None:
    with pytest.raises(AnalysisError, match=message):
        call()  # type: ignore[operator]


# --- segmentation and larger markets ---


@settings(max_examples=100, deadline=None)
@given(data=st.data(), n_prov=st.integers(1, 4), n_levels=st.integers(1, 20))
def test_segmentation_bands_cover_the_levels(data: st.DataObject, n_prov: int, n_levels: int) -> None:
    value = st.one_of(st.floats(0.01, 5.0), st.just(np.inf))
    flat = data.draw(st.lists(value, min_size=n_prov * n_levels, max_size=n_prov * n_levels))
    cost = np.array(flat).reshape(n_prov, n_levels)
    levels = np.linspace(0.1, 0.9, n_levels)
    providers = tuple(f"p{k}" for k in range(n_prov))
    seg = segment(levels, cost, providers)
    reachable = np.isfinite(cost).any(axis=0)
    covered = np.zeros(n_levels, dtype=bool)
    for name, low, high in seg.bands:
        inside = (levels >= low) & (levels <= high)
        assert not np.any(covered & inside)
        covered |= inside
        k = providers.index(name)
        assert np.all(cost[k, inside] == cost[:, inside].min(axis=0))
    np.testing.assert_array_equal(covered, reachable)
    assert set(seg.never_cheapest) == set(providers) - {name for name, _, _ in seg.bands}


@settings(max_examples=20, deadline=None)
@given(market=markets(3))
def test_the_arbitrageur_leaves_out_providers_that_are_never_cheapest(market: Outcomes) -> None:
    levels = _levels(market, 10)
    result = market_arbitrage(market, levels)
    idle = segmentation(result).never_cheapest
    assert all(c.providers == tuple(p for p in market.providers if p not in idle) for c in result.cascades)
    assert np.all(result.spend[:, list(market.provider_index(idle))] == 0)


def test_a_provider_dominated_everywhere_is_never_cheapest() -> None:
    rng = np.random.default_rng(7)
    n = rng.integers(2, 9, size=(8, 1))
    s = rng.integers(1, n + 1)
    cost = rng.uniform(0.01, 0.05, size=(8, 1))
    market = _market(np.hstack([n, n, n]), np.hstack([s, s, s]), np.hstack([cost, 3 * cost, 2 * cost]), 8, 3)
    result = market_arbitrage(market, _levels_of(market))
    assert segmentation(result).never_cheapest == ("p1", "p2")
    assert segmentation(result).bands[0][0] == "p0"


@settings(max_examples=15, deadline=None)
@given(market=markets(3))
def test_a_rival_with_every_provider_costs_what_the_arbitrageur_does(market: Outcomes) -> None:
    levels = _levels(market, 10)
    everyone = market_arbitrage(market, levels, cascade=market.providers)
    np.testing.assert_allclose(cascade_cost(market, levels, market.providers), everyone.arbitrage_cost)
    # fewer providers can only cost more
    assert np.all(cascade_cost(market, levels, market.providers[:2]) >= everyone.arbitrage_cost * (1 - 1e-9))


def test_market_arbitrage_errors() -> None:
    market = _market(np.full(6, 4), np.full(6, 2), np.full(6, 0.02), 1, 6)
    levels = np.array([0.4, 0.5])
    with pytest.raises(AnalysisError, match="too large"):
        market_arbitrage(market, levels, cascade=market.providers)
    with pytest.raises(AnalysisError, match="exact scheme"):
        market_arbitrage(market, levels, "exact", cascade=market.providers[:2])
    with pytest.raises(AnalysisError, match="unknown scheme"):
        market_arbitrage(market, levels, "fast")  # type: ignore[arg-type]
    with pytest.raises(AnalysisError, match="solve rates must lie"):
        market_arbitrage(market, np.array([0.0, 0.5]))
    with pytest.raises(DataError, match="unknown provider"):
        market_arbitrage(market, levels, cascade=["p0", "nobody"])


# --- market entry ---


@settings(max_examples=15, deadline=None)
@given(market=markets(3))
def test_entry_shares_are_aligned_and_sum_to_one(market: Outcomes) -> None:
    incumbents = market.select(["p0", "p1"])
    levels = _levels(incumbents, 10)
    entry = market_entry(market, ["p0", "p1"], "p2", levels)
    assert entry.providers == ("p0", "p1", "p2")
    for shares in (entry.shares_with_before, entry.shares_with_after):
        assert shares.shape == (len(levels), 4)
        np.testing.assert_allclose(shares.sum(axis=1), 1.0, atol=1e-9)
    assert np.all(entry.shares_with_before[:, 2] == 0) and np.all(entry.shares_without_before[:, 2] == 0)
    np.testing.assert_allclose(entry.average_with_after, entry.shares_with_after.mean(axis=0))


def test_an_entrant_that_never_solves_changes_nothing() -> None:
    rng = np.random.default_rng(11)
    n = rng.integers(2, 9, size=(8, 2))
    s = rng.integers(0, n + 1)
    cost = rng.uniform(0.01, 0.1, size=(8, 2))
    market = _market(
        np.hstack([n, np.full((8, 1), 5)]), np.hstack([s, np.zeros((8, 1))]), np.hstack([cost, cost[:, :1]]), 8, 3
    )
    entry = market_entry(market, ["p0", "p1"], "p2", _levels_of(market.select(["p0", "p1"])))
    np.testing.assert_allclose(entry.shares_with_after, entry.shares_with_before, atol=1e-12)
    np.testing.assert_allclose(entry.shares_without_after, entry.shares_without_before, atol=1e-12)


def test_entry_errors() -> None:
    market = _market(np.full(4, 4), np.full(4, 2), np.full(4, 0.02), 2, 2)
    with pytest.raises(AnalysisError, match="already an incumbent"):
        market_entry(market, ["p0", "p1"], "p1", np.array([0.5]))
    with pytest.raises(AnalysisError, match="at least one incumbent"):
        market_entry(market, [], "p1", np.array([0.5]))


# --- distillation ---


def _distillation_market(unit: str = "USD") -> Outcomes:
    """A teacher (p0) and three students (p1..p3) that solve more and more of what the teacher solves."""
    rng = np.random.default_rng(5)
    n_inst = 40
    scale = 1.0 if unit == "USD" else 1e6
    teacher_s = rng.integers(5, 11, size=n_inst)
    students = [np.minimum(teacher_s, rng.integers(0, 3 + 3 * k, size=n_inst)) for k in range(3)]
    s = np.column_stack([teacher_s, *students])
    n = np.full_like(s, 10)
    cost = np.column_stack([np.full(n_inst, 0.2), np.full((n_inst, 3), 0.01)]) * scale
    return _market(n, s, cost, n_inst, 4, unit)


@pytest.mark.parametrize("unit", ["USD", "compute"])
def test_distillation_per_student(unit: str) -> None:
    market = _distillation_market(unit)
    result = distillation(market, "p0", ["p1", "p2", "p3"], [1e6, 1e7, 1e8], max_k=12)
    assert result.cost_unit == unit
    assert result.levels.shape == result.margin.shape == (3, 100)
    np.testing.assert_allclose(result.max_margin, result.margin.mean(axis=1))
    assert np.all(result.max_margin >= 0)
    settings_ = settings_for(market)  # grids from the synthetic market's own costs
    for s, student in enumerate(result.students):
        pair = market.select([student, "p0"])
        best = paper.best_solve_rate(pair, settings_.distill_grid)
        np.testing.assert_allclose(result.levels[s], distillation_levels(pair, best))  # from the pair's data
        assert result.levels[s, 0] == pytest.approx(pair.pass_at_1.mean(axis=0).max())
        # no other pair of caps on the grid does better on average
        alone = paper.grid_search(
            pair, result.levels[s], settings_.distill_caps()[:1], "mean_margin", settings_.distill_grid
        )
        assert result.max_margin[s] >= alone.margin.mean() - 1e-12
    assert result.pass_at_k.shape == (3, 12) and result.teacher_pass_at_k.shape == (12,)
    assert np.all(np.diff(result.pass_at_k, axis=1) >= -1e-12)
    np.testing.assert_allclose(result.pass_at_k[:, 0], market.pass_at_1[:, 1:].mean(axis=0))
    teacher_alone = paper.provider_cost_curves(market.select(["p0"]), result.levels[0], settings_.distill_grid)
    np.testing.assert_allclose(result.teacher_alone[0], teacher_alone[0])
    assert np.all(result.teacher_with_arbitrage <= result.teacher_alone * (1 + 1e-9))


def test_a_student_that_never_solves_leaves_the_teacher_alone() -> None:
    market = _distillation_market()
    useless = _market(market.n, np.column_stack([market.s[:, 0], np.zeros((40, 3))]), market.cost, 40, 4)
    result = distillation(useless, "p0", ["p1"], [1e6])
    np.testing.assert_allclose(result.max_margin, 0.0, atol=1e-12)
    np.testing.assert_allclose(result.teacher_revenue_ratio, 1.0)


def test_fit_log_recovers_a_line() -> None:
    tokens = np.array([7e7, 2e8, 6e8, 1.8e9])
    fit = fit_log(tokens, 0.3 + 0.05 * np.log10(tokens))
    assert (fit.intercept, fit.slope, fit.r_squared) == pytest.approx((0.3, 0.05, 1.0))
    np.testing.assert_allclose(fit.predict(1e10), 0.3 + 0.5)
    assert np.isnan(fit_log([1e6], [0.2]).slope)


@pytest.mark.parametrize(
    ("students", "tokens", "message"),
    [
        (["p1", "p2"], [1e6], "one token count per student"),
        (["p1"], [0.0], "positive"),
        (["p0"], [1e6], "differ from the teacher"),
        ([], [], "at least one student"),
    ],
)
def test_distillation_errors(students: list[str], tokens: list[float], message: str) -> None:
    with pytest.raises(AnalysisError, match=message):
        distillation(_distillation_market(), "p0", students, tokens)


def test_a_cheap_weak_provider_and_a_dear_strong_one_leave_room_for_arbitrage() -> None:
    market = _distillation_market().select(["p3", "p0"])
    earned = revenue(market_arbitrage(market, _levels_of(market)))
    assert earned.arbitraged.any()
    assert np.all(earned.shares_with[earned.arbitraged, -1] > 0)
    np.testing.assert_allclose(earned.shares_with.sum(axis=1), 1.0, atol=1e-9)
    assert earned.revenue_change.min() < 1.0


# --- the exact scheme ---


@settings(max_examples=25, deadline=None)
@given(market=st.one_of(markets(2), markets(3)))
def test_exact_scheme_shares_sum_to_one_and_rivals_cost_no_less(market: Outcomes) -> None:
    best = best_solve_rate(market, "exact")
    assume(best > 0.05)
    levels = np.linspace(best / 3, best, 12)
    result = market_arbitrage(market, levels, "exact")
    earned = revenue(result)
    np.testing.assert_allclose(earned.shares_with.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(earned.shares_without.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(cascade_cost(market, levels, market.providers, "exact"), result.arbitrage_cost)
    rival = cascade_cost(market, levels, market.providers[:1], "exact")
    assert np.all(rival >= result.arbitrage_cost * (1 - 1e-9))


def test_exact_scheme_distillation_and_entry() -> None:
    market = _distillation_market()
    result = distillation(market, "p0", ["p1", "p3"], [1e6, 1e8], "exact", max_k=5)
    assert result.scheme == "exact" and np.all(result.margin >= 0)
    best = best_solve_rate(market.select(["p3", "p0"]), "exact")
    np.testing.assert_allclose(result.levels[1], distillation_levels(market.select(["p3", "p0"]), best))
    entry = market_entry(market, ["p0", "p1"], "p3", _levels_of(market.select(["p0", "p1"])), "exact")
    np.testing.assert_allclose(entry.shares_with_after.sum(axis=1), 1.0, atol=1e-9)
