"""The live cap rule `expected-attempt-fits`: its exact figures against a brute-force walk of the rule, against the
model where the two agree, and caps moved mid-way between breakpoints."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelarb.core.cascade import Cascade
from modelarb.core.exact_curves import evaluate
from modelarb.core.live import (
    attempt_costs,
    cap_interval,
    live_figures,
    live_instances,
    midpoint_caps,
    mixed_live_figures,
)
from modelarb.data import Outcomes
from modelarb.errors import AnalysisError


def spread_market(seed: int, instances: int = 15, providers: int = 3) -> Outcomes:
    """A small market whose attempt costs vary threefold either side of each provider's typical cost."""
    rng = np.random.default_rng(seed)
    shape = (instances, providers)
    n = rng.integers(1, 8, shape)
    s = rng.binomial(n, rng.uniform(0.0, 0.7, shape))
    base = 0.01 * (1 + 2 * np.arange(providers))
    cost = base * np.exp(rng.uniform(np.log(1 / 3), np.log(3), shape))
    return Outcomes(
        instances=np.array([f"repo__repo-{i}" for i in range(instances)]),
        providers=tuple(f"p{k}" for k in range(providers)),
        n=n,
        s=s,
        cost=cost,
        source=f"spread seed {seed}",
    )


def walk(
    rng: np.random.Generator, market: Outcomes, cascade: Cascade, first: dict[str, float], i: int
) -> tuple[bool, list[float]]:
    """One task served by the rule, attempt by attempt: solved?, and the spend on each stage."""
    spends = []
    for name, cap in zip(cascade.providers, cascade.caps, strict=True):
        p = market.providers.index(name)
        n, s, c = int(market.n[i, p]), int(market.s[i, p]), float(market.cost[i, p])
        draws = rng.permutation(np.arange(n) < s)  # recorded attempts in a random order, without replacement
        spent, costs = 0.0, list[float]()
        solved = False
        while True:
            estimate = sum(costs) / len(costs) if costs else first[name]
            if spent + estimate > cap:
                break
            if c > cap - spent:  # cut short: costs what remained, does not solve, ends the stage
                spent = cap
                break
            spent += c
            solved = bool(draws[len(costs)]) if len(costs) < n else s > 0
            costs.append(c)
            if solved:
                break
        spends.append(spent)
        if solved:
            return True, spends + [0.0] * (len(cascade.caps) - len(spends))
    return False, spends


def test_live_figures_agree_with_a_brute_force_walk_of_the_rule() -> None:
    market = spread_market(5)
    cascade = Cascade(("p0", "p1", "p2"), (0.024, 0.05, 0.1))
    first = attempt_costs(market)
    first["p1"] = 0.06  # the stage of p1 never starts: its first attempt is expected to cost more than its cap
    c, caps = market.cost, np.array(cascade.caps)
    assert np.any((c[:, 0] > caps[0]) & (first["p0"] <= caps[0]))  # truncated attempts happen ...
    assert np.any((c[:, 2] > caps[2]) & (first["p2"] <= caps[2]))
    assert np.any(c[:, 0] <= caps[0]) and np.any(c[:, 1] <= caps[1])  # ... and so do whole ones

    rng = np.random.default_rng(11)
    runs = 1500
    solved = np.zeros((market.n_instances, runs))
    spend = np.zeros((market.n_instances, runs, 3))
    for i in range(market.n_instances):
        for r in range(runs):
            ok, stages = walk(rng, market, cascade, first, i)
            solved[i, r], spend[i, r] = ok, stages

    def check(samples: np.ndarray, exact: float) -> float:
        """|exact − Monte Carlo| in standard errors (instances weighted equally)."""
        error = np.sqrt(samples.var(axis=1, ddof=1).sum() / runs) / market.n_instances
        return abs(exact - samples.mean()) / max(error, 1e-12)

    figures = live_figures(market, cascade, first)
    assert check(solved, figures.solve_rate) < 4
    assert check(spend.sum(axis=2), figures.spend) < 4
    for m in (0, 2):
        assert check(spend[:, :, m], figures.spend_by_provider[m]) < 4
    assert figures.spend_by_provider[1] == 0 and spend[:, :, 1].max() == 0
    model = evaluate(market, [cascade])
    assert abs(model.spend[0] - figures.spend) > 0.01 * model.spend[0]  # the walk can tell the rule from the model
    assert abs(model.solve[0] - figures.solve_rate) > 0.01


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), stretch=st.floats(1.0, 4.0))
def test_live_is_the_model_where_every_attempt_fits(seed: int, stretch: float) -> None:
    """With a ≤ τ and c ≤ τ everywhere the rule buys floor(τ / c) attempts, exactly as the model."""
    market = spread_market(seed)
    first = attempt_costs(market)
    caps = stretch * market.cost.max(axis=0)
    cascade = Cascade(("p2", "p0", "p1"), (caps[2], caps[0], caps[1]))
    model = evaluate(market, [cascade])
    figures = live_figures(market, cascade, first)
    assert figures.solve_rate == pytest.approx(model.solve[0], rel=1e-12, abs=1e-15)
    assert figures.spend == pytest.approx(model.spend[0], rel=1e-12)
    np.testing.assert_allclose(figures.spend_by_provider, model.stage_spend[0], rtol=1e-12)


def test_one_instance_by_hand() -> None:
    market = Outcomes(
        instances=np.array(["a__a-1"]), providers=("cheap", "strong"), n=np.array([[2, 4]]), s=np.array([[1, 2]]),
        cost=np.array([[0.5, 1.0]]),
    )  # fmt: skip
    first = {"cheap": 0.2, "strong": 1.0}
    truncated = Cascade(("cheap", "strong"), (0.3, 2.0))  # 0.5 > 0.3 ≥ 0.2: one cut-short attempt costing 0.3
    solve, stage_spend = live_instances(market, truncated, first)
    # then strong: 2 attempts from 4 with 2 successes, F(1) = 1/2, F(2) = 1/6
    assert solve[0] == pytest.approx(1 - 1 / 6)
    np.testing.assert_allclose(stage_spend[:, 0], [0.3, 1.0 * (1 + 0.5)])
    skipped = Cascade(("cheap", "strong"), (0.3, 2.0))
    figures = live_figures(market, skipped, {"cheap": 0.4, "strong": 1.0})  # a > τ: cheap's stage never starts
    assert figures.spend_by_provider == (0.0, pytest.approx(1.5)) and figures.solve_rate == pytest.approx(1 - 1 / 6)
    whole = live_figures(market, Cascade(("cheap",), (1.0,)), first)  # two attempts, F(1) = 1/2, F(2) = 0
    assert whole == (1.0, pytest.approx(0.75), (pytest.approx(0.75), 0.0))
    with pytest.raises(AnalysisError, match="no attempt cost for strong"):
        live_figures(market, truncated, {"cheap": 0.2})


def test_mixed_figures_weigh_the_cascades() -> None:
    market = spread_market(2)
    first = attempt_costs(market)
    a, b = Cascade(("p0", "p1"), (0.03, 0.1)), Cascade(("p1",), (0.05,))
    mixed = mixed_live_figures(market, [a, b], [0.25, 0.75], first)
    fa, fb = live_figures(market, a, first), live_figures(market, b, first)
    assert mixed.solve_rate == pytest.approx(0.25 * fa.solve_rate + 0.75 * fb.solve_rate)
    assert mixed.spend == pytest.approx(0.25 * fa.spend + 0.75 * fb.spend)
    np.testing.assert_allclose(
        mixed.spend_by_provider, 0.25 * np.array(fa.spend_by_provider) + 0.75 * np.array(fb.spend_by_provider)
    )
    empty = mixed_live_figures(market, [Cascade((), ())], [1.0], first)
    assert empty == (0.0, 0.0, (0.0, 0.0, 0.0))


def test_attempt_costs_are_means_over_recorded_instances() -> None:
    market = spread_market(4)
    first = attempt_costs(market)
    assert list(first) == list(market.providers)
    np.testing.assert_allclose(list(first.values()), market.cost.mean(axis=0))
    n = market.n.copy()
    n[:, 1] = 0
    blind = Outcomes(market.instances, market.providers, n, np.zeros_like(n), market.cost)
    with pytest.raises(AnalysisError, match="no recorded attempt of p1"):
        attempt_costs(blind)


def _same_purchases(market: Outcomes, a: Cascade, b: Cascade, first: dict[str, float]) -> None:
    """a and b buy the same: model figures and live solve rate equal; live spend equal but on truncated attempts,
    which cost the whole cap."""
    model_a, model_b = evaluate(market, [a]), evaluate(market, [b])
    assert (model_a.solve[0], model_a.spend[0]) == pytest.approx((model_b.solve[0], model_b.spend[0]), rel=1e-12)
    (solve_a, spend_a), (solve_b, spend_b) = live_instances(market, a, first), live_instances(market, b, first)
    np.testing.assert_allclose(solve_a, solve_b, rtol=1e-12)
    columns = market.provider_index(a.providers)
    for m, (p, cap_a, cap_b) in enumerate(zip(columns, a.caps, b.caps, strict=True)):
        truncated = (market.cost[:, p] > cap_a) & (first[a.providers[m]] <= cap_a)
        scale = np.where(truncated, cap_b / cap_a if cap_a > 0 else 1.0, 1.0)
        np.testing.assert_allclose(spend_a[m] * scale, spend_b[m], rtol=1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), instance=st.integers(0, 14), k=st.integers(1, 3), cap_2=st.floats(0.0, 0.3))
def test_a_cap_on_a_breakpoint_moves_to_the_middle_of_its_interval(
    seed: int, instance: int, k: int, cap_2: float
) -> None:
    market = spread_market(seed)
    first = attempt_costs(market)
    on_breakpoint = k * float(market.cost[instance, 0])
    cascade = Cascade(("p0", "p2"), (on_breakpoint, cap_2))
    moved = midpoint_caps(market, cascade, first)
    assert moved.providers == cascade.providers and (moved.caps[1] == 0) == (cap_2 == 0)
    _same_purchases(market, cascade, moved, first)
    for m, cap in enumerate(moved.caps):
        if cap == 0:
            continue
        for factor in (1 - 1e-9, 1 + 1e-9):
            nudged = Cascade(moved.providers, tuple(c * factor if j == m else c for j, c in enumerate(moved.caps)))
            _same_purchases(market, moved, nudged, first)
            model, model_nudged = evaluate(market, [moved]), evaluate(market, [nudged])
            assert (model.solve[0], model.spend[0]) == (model_nudged.solve[0], model_nudged.spend[0])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), cap=st.floats(1e-4, 0.5), estimate=st.floats(0.001, 0.1))
def test_no_breakpoint_lies_inside_a_cap_interval(seed: int, cap: float, estimate: float) -> None:
    market = spread_market(seed)
    n, s, c = market.n[:, 1], market.s[:, 1], market.cost[:, 1]
    lo, hi = cap_interval(n, s, c, cap, estimate)
    assert lo <= cap * (1 + 1e-12) and cap < hi
    useful = np.where(s > 0, n - s + 1, 60)
    ks = np.arange(1, 61)
    breakpoints = np.append((ks[None, :] * c[:, None])[ks[None, :] <= useful[:, None]], estimate)
    assert not np.any((breakpoints > lo * (1 + 1e-12)) & (breakpoints < hi * (1 - 1e-12)))


def test_above_the_last_breakpoint_the_cap_is_kept() -> None:
    market = Outcomes(
        instances=np.array(["a__a-1", "a__a-2"]), providers=("only",), n=np.array([[3], [2]]),
        s=np.array([[3], [1]]), cost=np.array([[0.1], [0.2]]),
    )  # fmt: skip
    first = attempt_costs(market)  # 0.15; last useful breakpoint: 2 attempts on the second instance, 0.4
    assert midpoint_caps(market, Cascade(("only",), (0.7,)), first).caps == (0.7,)
    assert midpoint_caps(market, Cascade(("only",), (0.4,)), first).caps == (pytest.approx(0.4 * (1 + 1e-6)),)
    assert midpoint_caps(market, Cascade(("only",), (0.25,)), first).caps == (pytest.approx(0.3),)  # [0.2, 0.4)
    assert midpoint_caps(market, Cascade(("only",), (0.12,)), first).caps == (pytest.approx(0.125),)  # [0.1, 0.15)
    assert midpoint_caps(market, Cascade(("only",), (0.0,)), first).caps == (0.0,)
