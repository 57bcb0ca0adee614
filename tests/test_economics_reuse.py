"""One search per market: sub-markets read from the market's search equal their own independent search.

Small synthetic markets, searched exhaustively (every cascade), so reading is exact and the read
results must match an independent search of the sub-market; where reading is not exact (a beam
search, orders cut to nothing, the hull using a provider outside) the sub-market is searched.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from conftest import CliResult
from modelarb.core.exact import exact_search
from modelarb.core.search import ExactSettings, best_solve_rate
from modelarb.data import Outcomes, load_market
from modelarb.economics import cascade_cost, market_arbitrage, market_entry, read_submarket, revenue
from modelarb.errors import AnalysisError

Array = NDArray[np.float64]
TIGHT = {"rtol": 1e-12, "atol": 1e-15}
Run = Callable[..., CliResult]


def _market(n: Array, s: Array, cost: Array) -> Outcomes:
    n_inst, n_prov = n.shape
    return Outcomes(
        instances=np.array([f"i{k}" for k in range(n_inst)]),
        providers=tuple(f"p{k}" for k in range(n_prov)),
        n=n.astype(np.int64),
        s=s.astype(np.int64),
        cost=cost.astype(float),
        unit="USD",
    )


@st.composite
def markets(draw: st.DrawFn, providers: int = 3) -> Outcomes:
    """2–6 instances, up to 6 attempts a cell, costs 0.005–0.3: small enough to search exhaustively."""
    seed = draw(st.integers(0, 2**32 - 1))
    n_inst = draw(st.integers(2, 6))
    rng = np.random.default_rng(seed)
    n = rng.integers(1, 7, size=(n_inst, providers))
    return _market(n, rng.integers(0, n + 1), rng.uniform(0.005, 0.3, size=(n_inst, providers)))


def _with_dominated_copy(base: Outcomes, factor: float = 10.0) -> Outcomes:
    """`base` plus a provider with p0's record at `factor` times its price, which the cheapest cascades avoid."""
    return _market(
        np.hstack([base.n, base.n[:, :1]]),
        np.hstack([base.s, base.s[:, :1]]),
        np.hstack([base.cost, factor * base.cost[:, :1]]),
    )


def _levels(market: Outcomes, points: int = 12) -> Array:
    best = best_solve_rate(market, "exact")
    assume(best > 0.05)
    return np.linspace(best / 3, best, points)


def _assert_same_revenue(reused: object, independent: object) -> None:
    for name in ("market_price", "without", "with_arbitrage", "profit"):
        np.testing.assert_allclose(getattr(reused, name), getattr(independent, name), **TIGHT)


@settings(max_examples=30, deadline=None)
@given(market=markets(3), entrant=st.sampled_from(["p0", "p1", "p2"]))
def test_entry_equals_two_independent_searches(market: Outcomes, entrant: str) -> None:
    incumbents = [p for p in market.providers if p != entrant]
    levels = _levels(market.select(incumbents))
    entry = market_entry(market, incumbents, entrant, levels, "exact")
    after = market_arbitrage(market.select([*incumbents, entrant]), levels, "exact")
    before = market_arbitrage(market.select(incumbents), levels, "exact")
    assert after.proven and before.proven  # exhaustive, so a read is exact
    _assert_same_revenue(entry.after, revenue(after))
    _assert_same_revenue(entry.before, revenue(before))


@settings(max_examples=20, deadline=None)
@given(base=markets(2))
def test_a_dominated_entrant_is_read_from_one_search(base: Outcomes) -> None:
    market = _with_dominated_copy(base)
    levels = _levels(base)
    after = market_arbitrage(market, levels, "exact")
    read = read_submarket(after, ["p0", "p1"], ExactSettings())
    assume(read is not None)  # p2 (p0 at ten times the price) almost never serves a level; where it does, no read
    assert read is not None and "read from the market with p2" in read.method
    independent = market_arbitrage(base, levels, "exact")
    np.testing.assert_allclose(read.arbitrage_cost, independent.arbitrage_cost, **TIGHT)
    np.testing.assert_allclose(read.spend, independent.spend, **TIGHT)
    np.testing.assert_allclose(read.provider_costs, independent.provider_costs, **TIGHT)
    entry = market_entry(market, ["p0", "p1"], "p2", levels, "exact")
    _assert_same_revenue(entry.before, revenue(independent))
    np.testing.assert_allclose(entry.shares_with_after[:, 2], 0.0, atol=1e-15)  # the entrant earns nothing


@settings(max_examples=30, deadline=None)
@given(market=markets(3), rival=st.sampled_from([["p0"], ["p1", "p2"], ["p0", "p2"], ["p0", "p1", "p2"]]))
def test_a_rival_read_from_the_market_costs_what_its_own_search_finds(market: Outcomes, rival: list[str]) -> None:
    levels = _levels(market)
    full = market_arbitrage(market, levels, "exact")
    reused = cascade_cost(market, levels, rival, "exact", market=full)
    np.testing.assert_allclose(reused, cascade_cost(market, levels, rival, "exact"), **TIGHT)


def test_a_rival_covering_the_hull_is_read() -> None:
    rng = np.random.default_rng(3)
    n = rng.integers(2, 6, size=(5, 2))
    base = _market(n, rng.integers(1, n + 1), rng.uniform(0.01, 0.2, size=(5, 2)))
    market = _with_dominated_copy(base)
    levels = np.linspace(0.2, best_solve_rate(market, "exact"), 9)
    full = market_arbitrage(market, levels, "exact")
    read = read_submarket(full, ["p0", "p1"], ExactSettings())
    assert read is not None
    np.testing.assert_allclose(cascade_cost(market, levels, ["p0", "p1"], "exact", market=full), read.arbitrage_cost)
    np.testing.assert_allclose(read.arbitrage_cost, market_arbitrage(base, levels, "exact").arbitrage_cost, **TIGHT)


def test_no_read_without_a_proven_optimum_or_when_the_hull_uses_another_provider() -> None:
    rng = np.random.default_rng(5)
    n = rng.integers(2, 6, size=(6, 2))
    base = _market(n, rng.integers(1, n + 1), rng.uniform(0.01, 0.2, size=(6, 2)))
    market = _with_dominated_copy(base)
    levels = np.linspace(0.2, best_solve_rate(market, "exact"), 9)
    beam = ExactSettings(beam_width=2)
    searched = market_arbitrage(market, levels, "exact", exact=beam)
    assert not searched.proven and read_submarket(searched, ["p0", "p1"], beam) is None
    # after a beam search the market before entry gets its own beam search, as it always did
    entry = market_entry(market, ["p0", "p1"], "p2", levels, "exact", beam)
    _assert_same_revenue(entry.before, revenue(market_arbitrage(base, levels, "exact", exact=beam)))
    full = market_arbitrage(market, levels, "exact")
    used = {p for cascade in full.cascades for p in cascade.providers}
    assert read_submarket(full, sorted(set(market.providers) - {min(used)}), ExactSettings()) is None
    # orders that leave the sub-market nothing are not the market's orders cut to it: no read
    assert read_submarket(full, ["p0", "p1"], ExactSettings(orders=[["p2"]])) is None


def test_the_proven_flag_follows_the_search() -> None:
    rng = np.random.default_rng(7)
    n = rng.integers(2, 6, size=(6, 3))
    market = _market(n, rng.integers(0, n + 1), rng.uniform(0.01, 0.2, size=(6, 3)))
    levels = np.linspace(0.2, best_solve_rate(market, "exact"), 5)
    assert exact_search(market, levels).proven
    assert not exact_search(market, levels, beam_width=2).proven
    branch = exact_search(market, levels, branch=True)
    assert branch.proven == ("proven optimum" in branch.method)
    assert not market_arbitrage(market, levels, "paper").proven


def test_the_market_must_be_priced_on_the_rivals_levels() -> None:
    market = _market(np.full((3, 2), 4), np.full((3, 2), 2), np.full((3, 2), 0.02))
    levels = np.array([0.3, 0.4])
    full = market_arbitrage(market, levels, "exact")
    with pytest.raises(AnalysisError, match="levels the rival"):
        cascade_cost(market, levels[:1], ["p0"], "exact", market=full)


def _write_dominated_market(folder: Path) -> Path:
    """p0, p1 on 6 instances, and p2: p0's attempts at ten times the price (one JSONL file each)."""
    rng = np.random.default_rng(13)
    folder.mkdir()
    records = {p: [] for p in ("p0", "p1", "p2")}
    for i in range(6):
        for p, skill, cost in (("p0", 0.3, 0.01), ("p1", 0.7, 0.08)):
            attempts = (rng.uniform(size=int(rng.integers(2, 6))) < skill).astype(int).tolist()
            records[p].append({"id": f"t-{i}", "mean_cost": cost * rng.uniform(0.5, 1.5), "attempts": attempts})
        records["p2"].append({**records["p0"][-1], "mean_cost": 10 * records["p0"][-1]["mean_cost"]})
    for p, rows in records.items():
        (folder / f"{p}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def test_the_cli_reads_the_rival_and_the_market_before_entry(run_cli: Run, tmp_path: Path) -> None:
    folder = _write_dominated_market(tmp_path / "market")
    market = load_market(folder, ["p0", "p1", "p2"])[0]
    levels = np.linspace(0.2, best_solve_rate(market.select(["p0", "p1"]), "exact"), 11)
    spec = f"{levels[0]}:{levels[-1]}:{len(levels)}"
    out = tmp_path / "race.json"
    common = ["--data", str(folder), "--scheme", "exact", "--levels", spec, "--json", str(out)]
    result = run_cli("market", "compete", *common, "-p", "p0,p1,p2", "--rival-providers", "p0,p1", "--settle")
    assert result.code == 0, result.err
    race = json.loads(out.read_text())
    read = read_submarket(market_arbitrage(market, levels, "exact"), ["p0", "p1"], ExactSettings())
    assert read is not None  # the CLI's rival is read from the market's search here
    independent = market_arbitrage(market.select(["p0", "p1"]), levels, "exact")
    np.testing.assert_allclose(race["arbitrage_costs"]["rival"], independent.arbitrage_cost, **TIGHT)
    result = run_cli("market", "entry", *common, "-p", "p0,p1", "--entrant", "p2")
    assert result.code == 0, result.err
    before = json.loads(out.read_text())["shares_with_arbitrage"]["before"]
    shares = revenue(independent).shares_with
    for k, name in enumerate(("p0", "p1", "arbitrageur")):
        np.testing.assert_allclose(before[name]["per_level"], shares[:, k], **TIGHT)
