"""Branch and bound, beam search and the search options at scale (issue 11), on markets generated here."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CliResult
from modelarb.core import boxes
from modelarb.core.bounds import CompletionBound, Target
from modelarb.core.exact import _unique_rows, exact_search
from modelarb.core.exact_curves import evaluate_cascades
from modelarb.core.grid import pass_curves
from modelarb.core.hull import hull_cost, lower_hull
from modelarb.core.passk import FailureTable, FailureTables, failure_probability
from modelarb.core.search import ExactSettings, best_solve_rate
from modelarb.data.outcomes import Outcomes
from modelarb.economics import market_arbitrage, market_entry
from modelarb.economics.larger import cascade_cost
from modelarb.errors import AnalysisError
from test_properties import markets

Run = Callable[..., CliResult]


def leaderboard(providers: int, instances: int, seed: int = 0, attempts: int = 1) -> Outcomes:
    """Correlated difficulty, costs over three orders of magnitude (as benchmarks/markets.py, smaller)."""
    rng = np.random.default_rng(seed)
    difficulty, skill = rng.normal(0, 1.5, instances), rng.normal(0, 1, providers)
    base = 10.0 ** (-4 + 3 * np.argsort(np.argsort(skill + rng.normal(0, 0.7, providers))) / max(providers - 1, 1))
    chance = 1 / (1 + np.exp(-(skill[None, :] - difficulty[:, None])))
    return Outcomes(
        instances=np.array([f"t{i}" for i in range(instances)]),
        providers=tuple(f"m{p}" for p in range(providers)),
        n=np.full((instances, providers), attempts),
        s=rng.binomial(attempts, chance),
        cost=base[None, :] * rng.lognormal(0, 0.5, instances)[:, None],
    )


def _levels(outcomes: Outcomes, points: int = 30) -> np.ndarray:
    best = best_solve_rate(outcomes)
    return np.linspace(best / 10, best, points)


def _same_costs(a: np.ndarray, b: np.ndarray) -> None:
    assert np.array_equal(np.isfinite(a), np.isfinite(b))
    finite = np.isfinite(a)
    np.testing.assert_allclose(a[finite], b[finite], rtol=1e-9, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 30), st.integers(0, 5), st.integers(0, 6), st.integers(0, 2**32 - 1))
def test_unique_rows_are_numpys_rows_and_inverse(rows: int, columns: int, values: int, seed: int) -> None:
    """The search's row grouping (a lexsort) gives exactly what np.unique(axis=0) gives, also for no rows or columns."""
    stages = np.random.default_rng(seed).integers(-1, values, (rows, columns))
    found, which = _unique_rows(stages)
    expected, inverse = np.unique(stages, axis=0, return_inverse=True)
    np.testing.assert_array_equal(found, expected)
    np.testing.assert_array_equal(which, inverse.ravel())
    assert which.dtype == np.int64 and found.dtype == stages.dtype


@settings(max_examples=40, deadline=None)
@given(markets(providers=(2, 4), instances=6, attempts=4), st.sampled_from([None, 1, 2]))
def test_branch_and_bound_equals_exhaustive_search(outcomes: Outcomes, depth: int | None) -> None:
    levels = _levels(outcomes, 25)
    exhaustive = exact_search(outcomes, levels, max_depth=depth)
    proven = exact_search(outcomes, levels, max_depth=depth, branch=True)
    assert "exhaustive" in exhaustive.method and "branch and bound (proven optimum)" in proven.method
    _same_costs(proven.arbitrage_cost, exhaustive.arbitrage_cost)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(0, 10_000),
    st.integers(3, 5),
    st.integers(15, 40),
    st.sampled_from([2, 3]),
    st.floats(0.3, 1.0),
)
def test_branch_and_bound_equals_exhaustive_search_on_one_attempt_markets(
    seed: int, providers: int, instances: int, depth: int, reach: float
) -> None:
    """One recorded attempt per instance (a leaderboard): unsolved chances are 0 or 1, caps also buy failing
    attempts; levels up to a fraction `reach` of the best solve rate, so what lies above them is closed too."""
    outcomes = leaderboard(providers, instances, seed)
    best = best_solve_rate(outcomes)
    levels = np.linspace(best * reach / 4, best * reach, 20)
    exhaustive = exact_search(outcomes, levels, max_depth=depth)
    proven = exact_search(outcomes, levels, max_depth=depth, branch=True)
    assert "exhaustive" in exhaustive.method and "branch and bound (proven optimum)" in proven.method
    _same_costs(proven.arbitrage_cost, exhaustive.arbitrage_cost)


def _targets_and_later_envelopes(seed: int) -> Iterator[tuple[Target, np.ndarray, np.ndarray | None]]:
    """Random targets T (from a hull so far, a `top`, floor 0), solve rates x, and the envelope at x of a hull that
    only adds points to the hull so far (its hull up to `top`, its tangent at `top` beyond; None where it has none)."""
    rng = np.random.default_rng(seed)
    for _ in range(200):
        points = np.sort(rng.random(12)), np.sort(rng.random(12)) * 3
        first = lower_hull(*points)
        top = float(rng.uniform(0.2, 0.9))
        more_solve, more_spend = np.append(points[0], rng.random(6)), np.append(points[1], rng.random(6) * 3)
        later = lower_hull(more_solve, more_spend)
        floor = 0.0  # any lower bound on the later hull at `top`
        target = Target.of(points[0][first], points[1][first], top, floor)
        x = np.linspace(0, 1, 401)
        h_solve, h_spend = more_solve[later], more_spend[later]
        at_top = hull_cost(h_solve, h_spend, np.array([top]))[0]
        right = np.searchsorted(h_solve, top, side="left")  # the later hull's slope just below `top`
        left = max(right - 1, 0)
        if not np.isfinite(at_top) or right == 0 or right >= len(h_solve):
            yield target, x, None
            continue
        slope = (h_spend[right] - h_spend[left]) / (h_solve[right] - h_solve[left])
        yield target, x, np.where(x <= top, hull_cost(h_solve, h_spend, x), at_top + slope * (x - top))


def test_target_lies_on_or_above_every_later_envelope() -> None:
    """T from a hull so far is at or above the envelope of any hull that only adds points to it."""
    for target, x, envelope in _targets_and_later_envelopes(5):
        if envelope is not None:
            assert np.all(target.at(x) >= envelope - 1e-12)


def test_branch_and_bound_gives_up_beyond_its_budget_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """When its sweeps outgrow `BOX_CELLS`, a branch and bound returns the hull it has met (its polished warm-up
    hull and what it found since), not proven, and says why."""
    outcomes = leaderboard(5, 40, seed=1)
    levels = _levels(outcomes)
    proven = exact_search(outcomes, levels, max_depth=3, branch=True)
    monkeypatch.setattr(boxes, "BOX_CELLS", 1_000)
    given_up = exact_search(outcomes, levels, max_depth=3, branch=True)
    assert proven.proven and not given_up.proven
    assert "beam search (not exhaustive)" in given_up.method and "outgrew its budget" in given_up.method
    assert np.all(given_up.arbitrage_cost >= proven.arbitrage_cost * (1 - 1e-12))


@pytest.mark.parametrize("seed", range(4))
def test_branch_and_bound_on_leaderboards_equals_exhaustive_search_and_closes_prefixes(seed: int) -> None:
    outcomes = leaderboard(5, 40, seed)
    levels = _levels(outcomes)
    exhaustive = exact_search(outcomes, levels, max_depth=3)
    proven = exact_search(outcomes, levels, max_depth=3, branch=True)
    _same_costs(proven.arbitrage_cost, exhaustive.arbitrage_cost)
    evaluated = int(proven.method.split(" of ")[0].split()[-1].replace(",", ""))
    total = int(exhaustive.method.split("all ")[1].split()[0].replace(",", ""))
    assert evaluated < total  # the bound closed some prefixes
    # the answer's cascades are real: their exact values lie on the reported costs
    for k, cascade in enumerate(proven.cascades):
        value = evaluate_cascades(outcomes, cascade.providers, np.array([cascade.caps]))
        assert value.solve[0] <= 1 and value.spend[0] >= 0, k


def test_completion_bound_is_below_every_completion() -> None:
    """L(δ) from a prefix lies below the spend of every one-stage completion of it."""
    outcomes = leaderboard(4, 60, seed=3, attempts=3)
    bound = CompletionBound.of(outcomes)
    first = outcomes.provider_index(["m0"])[0]
    k = np.ones((1, outcomes.n_instances))
    fail = FailureTable(outcomes.n[:, first], outcomes.s[:, first]).at(k)
    delta, least, _, _ = bound._curves(fail, np.array([first]), 3)
    for q in range(1, 4):
        for cap in np.geomspace(1e-5, 1.0, 25):
            kq = np.floor(cap / outcomes.cost[:, q] * (1 + 1e-12))
            fq = failure_probability(outcomes.n[:, q], outcomes.s[:, q], kq)
            gain = float((fail[0] * (1 - fq)).mean())
            values = evaluate_cascades(outcomes, ["m0", f"m{q}"], np.array([[outcomes.cost[:, first].max(), cap]]))
            spend = float(values.stage_spend[0, 1])
            assert spend >= np.interp(gain, delta[0], least[0]) * (1 - 1e-12)


def test_beam_is_near_the_proven_optimum_and_says_so() -> None:
    outcomes = leaderboard(6, 60, seed=2)
    levels = _levels(outcomes)
    proven = exact_search(outcomes, levels, max_depth=2, branch=True)
    beam = exact_search(outcomes, levels, max_depth=2, beam_width=256)
    assert "beam search (not exhaustive)" in beam.method and "at most 2 stages" in beam.method
    assert np.all(beam.arbitrage_cost >= proven.arbitrage_cost * (1 - 1e-12))


@pytest.mark.parametrize(("providers", "instances", "depth", "seed"), [(6, 100, 3, 2), (6, 100, 3, 0), (12, 200, 2, 1)])
def test_beam_is_within_half_a_percent_of_the_proven_optimum(
    providers: int, instances: int, depth: int, seed: int
) -> None:
    """Issue 11's target on small leaderboards, at every level (a beam of 16 per bin missed the first by 2.2 %; on small
    markets the beam now keeps more prefixes per stage, within its budget of cascades)."""
    outcomes = leaderboard(providers, instances, seed)
    levels = np.linspace(0.3, best_solve_rate(outcomes), 40)
    proven = exact_search(outcomes, levels, max_depth=depth, branch=True)
    beam = exact_search(outcomes, levels, max_depth=depth, beam_width=64)
    assert "proven optimum" in proven.method and "beam search (not exhaustive)" in beam.method
    reached = np.isfinite(proven.arbitrage_cost)
    assert np.array_equal(reached, np.isfinite(beam.arbitrage_cost))
    assert np.all(beam.arbitrage_cost[reached] >= proven.arbitrage_cost[reached] * (1 - 1e-12))
    assert np.all(beam.arbitrage_cost[reached] <= proven.arbitrage_cost[reached] * 1.005)


def test_failure_table_matches_the_formula() -> None:
    rng = np.random.default_rng(0)
    n = rng.integers(1, 40, 80)
    s = (rng.random(80) * (n + 1)).astype(int)
    k = np.floor(rng.random((5, 80)) * (n + 4))
    k[0, :5], k[1, :5] = np.inf, -2
    np.testing.assert_allclose(FailureTable(n, s).at(k), failure_probability(n, s, k), rtol=1e-12, atol=0)


def test_joint_failure_tables_read_as_each_providers_own() -> None:
    outcomes = leaderboard(5, 30, seed=2, attempts=4)
    tables = [FailureTable(outcomes.n[:, p], outcomes.s[:, p]) for p in range(5)]
    rng = np.random.default_rng(1)
    q = rng.integers(0, 5, 40)
    k = np.floor(rng.random((40, 30)) * 7) - 1
    k[0, :3] = np.inf
    expected = np.array([tables[p].at(row) for p, row in zip(q, k, strict=True)])
    np.testing.assert_array_equal(FailureTables(tables).at(q, k), expected)


def test_pass_curves_are_computed_once_per_grid() -> None:
    outcomes = leaderboard(3, 20)
    budgets = np.geomspace(1e-4, 1, 50)
    first = pass_curves(outcomes, budgets)
    assert pass_curves(outcomes, budgets.copy()) is first and not first.flags.writeable
    assert pass_curves(outcomes, budgets[:-1]) is not first


def test_search_settings_reach_the_economics() -> None:
    outcomes = leaderboard(4, 40, seed=1)
    levels = _levels(outcomes, 10)
    deep = market_arbitrage(outcomes, levels, "exact", exact=ExactSettings(max_depth=1))
    assert "at most 1 stage" in deep.method
    with pytest.raises(AnalysisError, match="exact scheme"):
        market_arbitrage(outcomes, levels, "paper", exact=ExactSettings(beam_width=4))
    rival = cascade_cost(outcomes, levels, ["m0", "m1"], "exact", ExactSettings(orders=[["m1", "m0", "m2"]]))
    assert rival.shape == levels.shape
    entry = market_entry(outcomes, ["m0", "m1", "m2"], "m3", levels[:5], "exact", ExactSettings(max_depth=2))
    assert entry.after.levels.shape == (5,)


def _write(folder: Path, outcomes: Outcomes) -> Path:
    folder.mkdir(parents=True)
    for p, name in enumerate(outcomes.providers):
        rows = [
            json.dumps(
                {
                    "id": f"repo__repo-{i}",
                    "mean_cost": float(outcomes.cost[i, p]),
                    "attempts": [1] * int(outcomes.s[i, p]) + [0] * int(outcomes.n[i, p] - outcomes.s[i, p]),
                }
            )
            for i in range(outcomes.n_instances)
        ]
        (folder / f"{name}.jsonl").write_text("\n".join(rows) + "\n")
    return folder


def test_cli_search_options(run_cli: Run, tmp_path: Path) -> None:
    folder = _write(tmp_path / "market", leaderboard(4, 30, seed=4, attempts=2))
    out = tmp_path / "a.json"
    result = run_cli(
        "arbitrage",
        "--data",
        str(folder),
        "--scheme",
        "exact",
        "--levels",
        "0.2:best:20",
        "--beam-width",
        "8",
        "--max-depth",
        "2",
        "--orders",
        "m0,m1,m2;m3,m0",
        "--json",
        str(out),
    )
    assert result.code == 0, result.err
    method = json.loads(out.read_text())["method"]
    assert "beam search" in method and "8 solve-rate bins" in method and "orders m0 → m1 → m2, m3 → m0" in method
    for command in (
        ["market", "revenue"],
        ["market", "compete", "--rival-providers", "m0,m1"],
        ["market", "entry", "--entrant", "m3"],
    ):
        result = run_cli(
            *command, "--data", str(folder), "--scheme", "exact", "--levels", "0.2:0.4:10", "--max-depth", "2"
        )
        assert result.code == 0, result.err
    result = run_cli("arbitrage", "--data", str(folder), "--scheme", "paper", "--beam-width", "8")
    assert result.code != 0 and "exact scheme" in result.err


def test_slack_by_hull_segments_is_the_minimum_over_the_bound_curve() -> None:
    """The slack read segment by segment of H equals min over δ ≤ most of (S + L(δ) − H(R + δ)) / S, read at
    every breakpoint of L (and −∞ where a completion may pass H's top)."""
    outcomes = leaderboard(8, 80, seed=5, attempts=3)
    bound = CompletionBound.of(outcomes)
    rng = np.random.default_rng(1)
    fail = rng.random((300, outcomes.n_instances)) * (rng.random((300, outcomes.n_instances)) < 0.6)
    solve, spend = rng.random(300) * 0.6, rng.random(300) * 0.02
    points = rng.random((40, 2)) * [0.9, 0.05]
    hull_x, hull_y = np.append(0.0, points[:, 0]), np.append(0.0, points[:, 1])
    vertices = lower_hull(hull_x, hull_y)
    target = Target.of(hull_x[vertices], hull_y[vertices])
    assert target.convex
    used = np.array([2])
    for remaining in (1, 2, 5):
        slack = bound.slack(solve, spend, fail, used, remaining, target)
        delta, least, most, _ = bound._curves(fail, used, remaining)
        for k in range(len(solve)):
            d = np.append(delta[k][delta[k] < most[k]], most[k])
            value = (spend[k] + np.interp(d, delta[k], least[k]) - target.at(solve[k] + d)).min() / spend[k]
            if solve[k] + most[k] > target.reach:
                assert slack[k] == -np.inf
            else:
                assert slack[k] == pytest.approx(value, rel=1e-9, abs=1e-12)
        assert np.isfinite(slack).any() and np.isinf(slack).any()


def test_children_past_the_top_by_their_parent_are_past_by_their_own_curve() -> None:
    """`past_children` reads from a parent alone what `slack` finds from each child's own unsolved chances."""
    outcomes = leaderboard(8, 80, seed=6, attempts=3)
    bound = CompletionBound.of(outcomes)
    rng = np.random.default_rng(2)
    shape = (40, outcomes.n_instances)
    parents = np.where(rng.random(shape) < 0.8, 1.0, rng.random(shape))
    parent = rng.integers(0, 40, 400)
    cut = rng.random((400, outcomes.n_instances)) < rng.random((400, 1))
    children = parents[parent] * np.where(cut, rng.random((400, 1)), 1.0)  # each child leaves less unsolved
    solve, parent_solve = 1 - children.mean(axis=1), 1 - parents.mean(axis=1)
    none = np.zeros(0, np.int64)
    flagged = []
    for top in (0.93, 0.97):
        target = Target.of(np.array([0.0, top]), np.array([0.0, 0.01]))
        for remaining in (1, 2, 4):
            gained = solve - parent_solve[parent]
            past = bound.past_children(parents, none, remaining, target, parent_solve, parent, gained)
            slack = bound.slack(solve, np.full(400, 0.005), children, none, remaining, target)
            assert np.all(slack[past] == -np.inf)
            flagged.append(past.sum())
    assert min(flagged) == 0 and 0 < max(flagged) < 400  # some flag none, some a part
