"""The branch and bound over boxes of caps (core/boxes.py): its bound against brute force, and its proofs against
exhaustive search, on markets generated here."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from modelarb.core.bounds import Target
from modelarb.core.boxes import _Boxes, _Corner, _Stages
from modelarb.core.exact import exact_hull, exact_search
from modelarb.core.exact_curves import Breakpoints, evaluate_cascades, failure_and_attempts
from modelarb.core.hull import lower_hull
from modelarb.core.passk import FailureTable
from modelarb.data.outcomes import Outcomes
from test_exact import random_market
from test_search_scale import _same_costs, leaderboard


def _stages(outcomes: Outcomes, made_once: bool) -> tuple[list[Breakpoints], _Stages]:
    tables = [FailureTable(outcomes.n[:, p], outcomes.s[:, p]) for p in range(outcomes.n_providers)]
    steps = [Breakpoints.of(outcomes, p, tables[p]) for p in range(outcomes.n_providers)]
    stages = _Stages.of(outcomes, steps, tables)
    assert stages.table is not None
    return steps, stages if made_once else replace(stages, table=None)


@pytest.mark.parametrize("seed", range(3))
def test_attempts_read_from_the_failure_table_are_the_formulas(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = rng.integers(1, 60, 300)
    s = (rng.random(300) * (n + 1)).astype(int)
    k = np.floor(rng.random((6, 300)) * (n + 5))
    k[0, :7], k[1, :7] = np.inf, -3
    table = FailureTable(n, s)
    fail, attempts = failure_and_attempts(n, s, np.maximum(k, 0))
    np.testing.assert_array_equal(table.at(k), fail)
    np.testing.assert_allclose(table.attempts(k), attempts, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("made_once", [True, False], ids=["table", "rows-made-when-asked"])
@pytest.mark.parametrize(("kind", "seed"), [("random", 0), ("random", 3), ("leaderboard", 1), ("multi", 2)])
def test_every_cascade_of_a_box_solves_at_most_its_corner_and_spends_at_least_its_corner_less_delta(
    kind: str, seed: int, made_once: bool
) -> None:
    """With the same last stage (or none), every cascade whose caps lie in a box solves no more than the box's corner
    and spends no less than the corner's spend less Δ: the inequality each closed box rests on. Stages' rows are read
    from a table made once, or made when asked (markets too large for the table)."""
    outcomes = (
        random_market(seed, instances=12, providers=3, attempts=5)
        if kind == "random"
        else leaderboard(3, 14, seed, 1 if kind == "leaderboard" else 3)
    )
    steps, table = _stages(outcomes, made_once)
    rng = np.random.default_rng(seed)
    caps = [np.append(0.0, s.caps) for s in steps]
    checked = 0
    for first, second, last in itertools.permutations(range(3)):
        for _ in range(4):
            lo1, hi1 = np.sort(rng.integers(1, caps[first].size, 2))
            lo2, hi2 = np.sort(rng.integers(0, caps[second].size, 2))
            box = _Boxes(
                np.array([[first, second]]),
                np.array([[lo1, lo2]]),
                np.array([[hi1, hi2]]),
                np.ones((1, 4), bool),
                np.full((1, 4), np.nan),
            )
            corner = _Corner.of(table, box)
            bound = corner.spend[0] - corner.delta[0].sum()
            names = [outcomes.providers[p] for p in (first, second, last)]
            for end in np.append(0.0, caps[last][1:]):
                grid = np.array([[a, b, end] for a in caps[first][lo1 : hi1 + 1] for b in caps[second][lo2 : hi2 + 1]])
                inside = evaluate_cascades(outcomes, names, grid)
                top = evaluate_cascades(outcomes, names, np.array([[caps[first][hi1], caps[second][hi2], end]]))
                lowered = bound + (top.spend[0] - corner.spend[0])  # the corner with this last stage, less Δ
                assert np.all(inside.solve <= top.solve[0] + 1e-12)
                assert np.all(inside.spend >= lowered - 1e-12)
                checked += len(grid)
    assert checked > 1000


def test_the_target_rises_so_reading_it_further_right_reads_no_lower() -> None:
    """`boxes` reads T at the next point of a grid: sound because T never falls as the solve rate grows."""
    rng = np.random.default_rng(7)
    for _ in range(100):
        x, y = np.append(0.0, rng.random(15)), np.append(0.0, rng.random(15) * 2)
        vertices = lower_hull(x, y)
        top = float(rng.uniform(0.1, 1.0))
        floor = float(rng.uniform()) * float(np.interp(top, x[vertices], y[vertices]))
        values = Target(x[vertices], y[vertices], top, floor).at(np.linspace(0, 1, 2001))
        assert np.all(np.diff(values[np.isfinite(values)]) >= -1e-12)
        assert np.all(np.isfinite(values[: int(np.isfinite(values).sum())]))  # +∞ only past its reach


@pytest.mark.parametrize(
    "orders",
    [[["p0", "p1"], ["p2", "p3"]], [["p3", "p0", "p2"], ["p1"]], [["p0", "p1", "p2", "p3"]]],
    ids=["pairs", "three-and-one", "one-order"],
)
@pytest.mark.parametrize("depth", [2, 3])
def test_a_proof_over_some_orders_equals_exhaustive_search_over_them(orders: list[list[str]], depth: int) -> None:
    """Orders shorter than the depth, and orders only some prefixes of which extend, are searched in full."""
    outcomes = random_market(5, instances=12, providers=4, attempts=4)
    levels = np.linspace(0.05, 0.6, 12)
    exhaustive = exact_search(outcomes, levels, orders=orders, max_depth=depth)
    proven = exact_search(outcomes, levels, orders=orders, max_depth=depth, branch=True)
    assert "exhaustive" in exhaustive.method and "proven optimum" in proven.method
    _same_costs(proven.arbitrage_cost, exhaustive.arbitrage_cost)
    allowed = {
        tuple(o[k] for k in keep)
        for o in orders
        for r in range(1, 5)
        for keep in itertools.combinations(range(len(o)), r)
    }
    assert all(cascade.providers in allowed | {()} for cascade in proven.cascades)  # (): the mix with buying nothing


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_a_proof_at_any_depth_equals_exhaustive_search(depth: int) -> None:
    outcomes = leaderboard(4, 15, seed=depth)
    levels = np.linspace(0.1, 0.7, 15)
    exhaustive = exact_search(outcomes, levels, max_depth=depth)
    proven = exact_search(outcomes, levels, max_depth=depth, branch=True)
    assert "proven optimum" in proven.method
    _same_costs(proven.arbitrage_cost, exhaustive.arbitrage_cost)


def test_a_short_beams_caps_are_proven_optimal_for_the_provider_orders_on_its_hull() -> None:
    """A beam of two bins over 8 providers keeps cascades 1.06 % too dear at some level for their own orders
    (polishing alone does not reach their caps); the branch and bound over those orders brings it to their optimum."""
    outcomes = leaderboard(8, 60, seed=6, attempts=3)
    levels = np.linspace(0.1, 0.8, 30)
    beam = exact_search(outcomes, levels, max_depth=3, beam_width=2)
    assert "caps of the provider orders on it proven optimal" in beam.method
    orders = sorted({cascade.providers for cascade in beam.cascades if cascade.providers})
    own = exact_search(outcomes, levels, max_depth=3, orders=[list(order) for order in orders])
    assert "exhaustive" in own.method
    _same_costs(beam.arbitrage_cost, own.arbitrage_cost)


def test_each_part_of_a_partitioned_proof_holds_only_cascades_that_start_with_its_provider() -> None:
    """Also the part of a provider that solves nothing (it has no caps): it holds only buying nothing."""
    outcomes = leaderboard(4, 15, seed=1)
    s = outcomes.s.copy()
    s[:, 0] = 0
    outcomes = replace(outcomes, s=s)
    for p in range(4):
        part = exact_hull(outcomes, top=0.7, max_depth=3, branch=True, first=[p])
        assert part.proven
        firsts = part.points.stages[:, 0]
        assert np.all((firsts == p) | (part.points.stages.max(axis=1) < 0)), (p, part.points.stages)
        assert p > 0 or len(firsts) == 1
