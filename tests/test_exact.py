"""The exact scheme (METHOD §3–4): closed forms, breakpoints, hulls, the search's options, and the paper's data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from modelarb.core.exact import exact_search
from modelarb.core.exact_curves import (
    Breakpoints,
    evaluate_cascades,
    failure_and_attempts,
    provider_cost_curves,
    provider_curves,
)
from modelarb.core.hull import lower_hull, read_hull
from modelarb.core.paper import PaperSettings
from modelarb.core.passk import attempts_within, failure_probability
from modelarb.core.search import best_solve_rate, search
from modelarb.data import load_market
from modelarb.data.outcomes import Outcomes
from modelarb.errors import AnalysisError, DataError


def random_market(seed: int, instances: int = 30, providers: int = 3, attempts: int = 60) -> Outcomes:
    """Costs rounded to cents, so that caps of different instances coincide."""
    rng = np.random.default_rng(seed)
    n = rng.integers(1, attempts + 1, (instances, providers))
    s = np.where(rng.random(n.shape) < 0.3, 0, rng.integers(0, n + 1))
    cost = np.round(rng.uniform(0.01, 0.2, n.shape), 2)
    return Outcomes(
        instances=np.array([f"i{k}" for k in range(instances)]),
        providers=tuple(f"p{k}" for k in range(providers)),
        n=n,
        s=s,
        cost=cost,
    )


def test_expected_attempts_is_the_running_sum_of_failure_chances() -> None:
    n, s, k = np.meshgrid(np.arange(1, 41), np.arange(0, 41), np.arange(0, 44), indexing="ij")
    n, s, k = n[s <= n], s[s <= n], k[s <= n]
    direct = np.cumsum(failure_probability(n[:, None], s[:, None], np.arange(44)[None, :]), axis=1)
    expected = np.where(k > 0, direct[np.arange(len(k)), np.maximum(k - 1, 0)], 0.0)
    fail, attempts = failure_and_attempts(n, s, k)
    np.testing.assert_allclose(attempts, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(fail, failure_probability(n, s, k))


def test_expected_attempts_for_thousands_of_records_and_unbounded_caps() -> None:
    k = np.array([1, 10, 100, 4000, 4998, 6000])
    direct = np.cumsum(failure_probability(5000, 3, np.arange(6000)))[k - 1]
    np.testing.assert_allclose(failure_and_attempts(5000, 3, k)[1], direct, rtol=1e-7)
    assert failure_and_attempts(7, 2, np.inf)[1] == pytest.approx(8 / 3)
    assert failure_and_attempts(7, 0, 9)[1] == 9


def test_breakpoint_sweep_equals_direct_evaluation() -> None:
    outcomes = random_market(1)
    rng = np.random.default_rng(2)
    fail = rng.random((4, outcomes.n_instances))
    for p in range(outcomes.n_providers):
        steps = Breakpoints.of(outcomes, p)
        assert np.all(np.diff(steps.caps) > 0)
        solve, spend = steps.sweep(fail)
        k = attempts_within(steps.caps[:, None], outcomes.cost[None, :, p])  # (G, I)
        f, attempts = failure_and_attempts(outcomes.n[None, :, p], outcomes.s[None, :, p], k)
        weights = fail / outcomes.n_instances
        np.testing.assert_allclose(solve, weights @ (1 - f).T, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(spend, weights @ (outcomes.cost[:, p] * attempts).T, rtol=1e-10, atol=1e-12)


def test_caps_between_breakpoints_only_add_spend() -> None:
    outcomes = random_market(3)
    for p in range(outcomes.n_providers):
        caps = Breakpoints.of(outcomes, p).caps
        between = (caps[:-1] + caps[1:]) / 2
        solve_at, spend_at = provider_curves(outcomes, caps[:-1])
        solve_between, spend_between = provider_curves(outcomes, between)
        np.testing.assert_allclose(solve_between[p], solve_at[p], rtol=0, atol=1e-14)
        assert np.all(spend_between[p] >= spend_at[p] - 1e-14)


def test_free_attempts_cost_nothing() -> None:
    outcomes = Outcomes(
        instances=np.array(["a", "b"]), providers=("free",), n=np.array([[2], [1]]), s=np.array([[1], [1]]),
        cost=np.array([[0.0], [0.5]]),
    )  # fmt: skip
    steps = Breakpoints.of(outcomes, 0)
    assert 0 < steps.caps[0] < 0.5
    np.testing.assert_allclose(provider_cost_curves(outcomes, np.array([0.25, 0.5, 0.75, 1.0]))[0], [0, 0, 0.125, 0.25])
    values = evaluate_cascades(outcomes, ["free"], [[steps.caps[0]], [1.0]])
    np.testing.assert_allclose(values.solve, [0.5, 1.0])
    np.testing.assert_allclose(values.spend, [0.0, 0.25])


def test_lower_hull_keeps_the_cheap_convex_chain() -> None:
    solve = np.array([0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 0.8, 0.3, 0.7])
    spend = np.array([0.0, 0.1, 0.2, 0.5, 0.4, 1.0, 1.2, 0.3, 0.75])
    # (0.2, 0.1) is on the chord from (0, 0) to (0.4, 0.2); (0.7, 0.75) is above the chord (0.6, 0.4)-(0.8, 1.0)
    np.testing.assert_array_equal(lower_hull(solve, spend), [0, 2, 4, 5])
    np.testing.assert_array_equal(lower_hull(np.array([0.3, 0.3]), np.array([2.0, 1.0])), [1])
    np.testing.assert_array_equal(lower_hull(np.linspace(0, 1, 5), np.linspace(0, 2, 5)), [0, 4])


def test_read_hull_mixes_neighbouring_vertices() -> None:
    reading = read_hull(
        np.array([0.0, 0.4, 0.8]), np.array([0.0, 0.2, 1.0]), np.array([0.1, 0.4, 0.7, 0.8 + 1e-12, 0.9])
    )
    np.testing.assert_array_equal(reading.right, [1, 1, 2, 2, 2])
    np.testing.assert_allclose(reading.weight, [0.25, 1.0, 0.75, 1.0, 1.0])
    np.testing.assert_allclose(reading.cost[:4], [0.05, 0.2, 0.8, 1.0])
    assert np.isinf(reading.cost[4]) and not reading.reached[4]


def test_search_options_are_checked() -> None:
    outcomes, levels = random_market(4, instances=6, attempts=5), np.array([0.2])
    with pytest.raises(AnalysisError, match="at least one target"):
        exact_search(outcomes, np.array([]))
    with pytest.raises(AnalysisError, match="beam width"):
        exact_search(outcomes, levels, beam_width=0)
    with pytest.raises(DataError, match="unknown provider"):
        exact_search(outcomes, levels, orders=[["p0", "nope"]])
    with pytest.raises(AnalysisError, match="at most once"):
        exact_search(outcomes, levels, orders=[["p0", "p0"]])
    with pytest.raises(AnalysisError, match="orders must be"):
        exact_search(outcomes, levels, orders="some")


def test_orders_restrict_the_cascades() -> None:
    outcomes = random_market(5, instances=12, providers=2, attempts=8)
    levels = np.linspace(0.05, best_solve_rate(outcomes), 30)
    anywhere = exact_search(outcomes, levels)
    forward = exact_search(outcomes, levels, orders=[["p0", "p1"]])
    assert np.all(anywhere.arbitrage_cost <= forward.arbitrage_cost * (1 + 1e-12))
    assert all(c.providers in {("p0",), ("p1",), ("p0", "p1"), ()} for c in forward.cascades)
    assert "orders p0 → p1" in forward.method and "every order" in anywhere.method
    np.testing.assert_array_equal(search(outcomes, levels).arbitrage_cost, anywhere.arbitrage_cost)


def test_beam_search_says_so_and_explores_less() -> None:
    outcomes = random_market(6, instances=20, providers=3, attempts=10)
    levels = np.linspace(0.05, best_solve_rate(outcomes), 30)
    exhaustive, beam = exact_search(outcomes, levels), exact_search(outcomes, levels, beam_width=4)
    assert exhaustive.method.startswith("exact caps, exhaustive")
    assert "beam search (not exhaustive)" in beam.method and "4 solve-rate bins" in beam.method
    assert np.all(beam.arbitrage_cost >= exhaustive.arbitrage_cost * (1 - 1e-12))


# --- the paper's data (MODELARB_DATA) -------------------------------------------------------------------------

PAIR = ["gpt5mini", "deepseek"]
FOUR = ["minicoder4b", "qwen3-coder-30b", "gpt5mini", "deepseek"]


def at(levels: np.ndarray, values: np.ndarray, u: float) -> float:
    return float(values[int(np.abs(levels - u).argmin())])


def family_cost(outcomes: Outcomes, caps: tuple[float, ...], levels: np.ndarray) -> np.ndarray:
    """C(u) of the paper's cascade over a global budget b, evaluated exactly: stage m gets
    min(τ_m, max(b − Σ_{m'<m} τ_m', 0)); the budgets that matter are the stages' breakpoints."""
    order = [p for p, cap in zip(outcomes.providers, caps, strict=True) if cap > 0]
    taus = [cap for cap in caps if cap > 0]
    rows = []
    for m, p in enumerate(order):
        own = Breakpoints.of(outcomes, outcomes.providers.index(p)).caps
        own = np.append(own[own < taus[m]], taus[m])
        rows.append(np.column_stack([np.tile(taus[:m], (len(own), 1)), own, np.zeros((len(own), len(order) - m - 1))]))
    values = evaluate_cascades(outcomes, order, np.concatenate(rows))
    solve, spend = np.append(0.0, values.solve), np.append(0.0, values.spend)
    vertices = lower_hull(solve, spend)
    return read_hull(solve[vertices], spend[vertices], levels).cost


@pytest.fixture
def pair(paper_data: Path) -> Outcomes:
    return load_market(paper_data / "swebench", PAIR)[0]


@pytest.mark.data
def test_pair_market_exact_numbers(pair: Outcomes, record_property: Callable[[str, object], None]) -> None:
    best = best_solve_rate(pair, "exact")
    levels = np.linspace(0.68, best, 1000)
    result = exact_search(pair, levels)
    paper = search(pair, np.linspace(0.68, best_solve_rate(pair, "paper"), 1000), "paper")
    top = int(result.margin.argmax())
    numbers = {
        "best_solve_rate": best,
        "max_margin": result.max_margin,
        "max_margin_at": result.max_margin_at,
        "market_price_at_max": float(result.market_price[top]),
        "arbitrage_cost_at_max": float(result.arbitrage_cost[top]),
        **{f"margin_at_{u}": at(levels, result.margin, u) for u in (0.70, 0.72, 0.74)},
    }
    for key, value in numbers.items():
        record_property(key, value)
    print("exact scheme, SWE-bench pair:", {k: round(v, 4) for k, v in numbers.items()})

    assert "exhaustive" in result.method
    assert best >= best_solve_rate(pair, "paper")  # the paper's budget grid stops at $1 per issue
    assert result.providers[result.cheapest[0]] == "gpt5mini" and result.providers[result.cheapest[-1]] == "deepseek"
    assert np.all((result.margin > 0) & (result.margin < 1))
    np.testing.assert_allclose(result.spend.sum(axis=1), result.arbitrage_cost, rtol=1e-9)
    assert np.all(result.spend[np.isfinite(result.arbitrage_cost)] >= 0)
    # the paper's chosen cascade, run over a global budget, is one family among those searched
    chosen = family_cost(pair, paper.cascades[0].caps, levels)
    reached = np.isfinite(chosen)
    assert reached.mean() > 0.9
    assert np.all(result.arbitrage_cost[reached] <= chosen[reached] * (1 + 1e-9))
    # every order was searched
    forward = exact_search(pair, levels, orders=[PAIR])
    assert np.all(result.arbitrage_cost <= forward.arbitrage_cost * (1 + 1e-12))
    # a beam search over 64 bins loses little
    beam = exact_search(pair, levels, beam_width=64)
    assert np.all(beam.arbitrage_cost >= result.arbitrage_cost * (1 - 1e-12))
    assert np.all(beam.arbitrage_cost <= result.arbitrage_cost * 1.02)


@pytest.mark.data
def test_four_provider_beam_beats_the_paper_grid(paper_data: Path) -> None:
    outcomes = load_market(paper_data / "swebench", FOUR)[0]
    levels = np.linspace(0.40, best_solve_rate(outcomes, "exact"), 100)
    result = exact_search(outcomes, levels)
    assert "beam search (not exhaustive)" in result.method
    caps = PaperSettings.for_unit(outcomes.unit).stage_caps(4)
    grid = evaluate_cascades(outcomes, FOUR, caps)
    solve, spend = np.append(0.0, grid.solve), np.append(0.0, grid.spend)
    vertices = lower_hull(solve, spend)
    grid_cost = read_hull(solve[vertices], spend[vertices], levels).cost
    assert np.all(result.arbitrage_cost <= grid_cost * (1 + 1e-9))
    # more providers never cost more; a beam search does not promise it, but here it holds by a wide margin
    common = levels >= 0.68
    pair = exact_search(outcomes.select(PAIR), levels[common])
    assert np.all(result.arbitrage_cost[common] <= pair.arbitrage_cost)
