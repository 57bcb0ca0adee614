"""Issue 10, done when: every analysis command runs with default options on markets unlike the paper's, and its
numbers hold up against a brute-force evaluation written here, attempt by attempt.

The three markets of `synthetic_markets`: a 30-provider one-attempt leaderboard with per-instance costs from
$0.001 to $5, a theorem-proving market priced in attempts, and a market whose attempts cost up to $10.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import CliResult
from modelarb.core.cascade import Cascade
from modelarb.core.plan import Plan
from modelarb.data.market import load_market
from modelarb.data.outcomes import Outcomes
from synthetic_markets import attempts_market, dear_market, leaderboard
from test_cli_arbitrage import flat

Run = Callable[..., CliResult]
MARKETS = ("leaderboard", "attempts", "dear")
ENTRANT = {"leaderboard": "model-02", "attempts": "prover-small", "dear": "small"}
ROBUST_PAIR = {"leaderboard": "model-02,model-29", "attempts": "prover-large,prover-small", "dear": "small,agent"}


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("markets")
    return {
        "leaderboard": leaderboard(root / "leaderboard", providers=30, instances=60),
        "attempts": attempts_market(root / "attempts"),
        "dear": dear_market(root / "dear"),
    }


def brute_force(outcomes: Outcomes, cascade: Cascade) -> tuple[float, float]:
    """Mean solve rate and spend of a cascade, instance by instance, attempt by attempt without replacement
    (METHOD §2, §4): a cap buys floor(cap / c) attempts; every attempt fails where none recorded succeeded."""
    solve = spend = 0.0
    for i in range(outcomes.n_instances):
        unsolved = 1.0
        for provider, cap in zip(cascade.providers, cascade.caps, strict=True):
            p = outcomes.providers.index(provider)
            n, s, c = int(outcomes.n[i, p]), int(outcomes.s[i, p]), float(outcomes.cost[i, p])
            if s == 0:
                spend += unsolved * c * np.floor(cap / c * (1 + 1e-12))
                continue
            bought, failed = 0, 1.0
            while failed > 0 and (bought + 1) * c <= cap * (1 + 1e-12):
                spend += unsolved * failed * c
                failed *= (n - s - bought) / (n - bought)
                bought += 1
            unsolved *= failed
        solve += 1.0 - unsolved
    return solve / outcomes.n_instances, spend / outcomes.n_instances


def mixed(outcomes: Outcomes, cascades: list[Cascade], weights: list[float]) -> tuple[float, float]:
    values = [brute_force(outcomes, c) for c in cascades]
    return sum(w * v[0] for w, v in zip(weights, values, strict=True)), sum(
        w * v[1] for w, v in zip(weights, values, strict=True)
    )


def at_level(data: dict[str, Any], k: int) -> tuple[list[Cascade], list[float]]:
    """The cascade (or mix) an `arbitrage --json` names at level k."""
    cascades = [Cascade(tuple(c["providers"]), tuple(c["caps"])) for c in data["cascades"]]
    main, partner = data["cascade_at"][k], (data["partner_at"] or [-1] * (k + 1))[k]
    if partner is None or partner < 0:
        return [cascades[main]], [1.0]
    weight = data["partner_weight"][k]
    return [cascades[main], cascades[partner]], [1.0 - weight, weight]


def run_json(run_cli: Run, tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "out.json"
    result = run_cli(*args, "--json", str(out))
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    return dict(json.loads(out.read_text()))


@pytest.mark.parametrize("name", MARKETS)
def test_describe(name: str, folders: dict[str, Path], run_cli: Run, tmp_path: Path) -> None:
    data = run_json(run_cli, tmp_path, "describe", "--data", str(folders[name]))
    outcomes, _ = load_market(folders[name])
    assert [row["provider"] for row in data["providers"]] == list(outcomes.providers)
    assert data["cost_unit"] == ("attempts" if name == "attempts" else "USD")


@pytest.mark.parametrize("name", MARKETS)
def test_arbitrage_exact_against_brute_force(name: str, folders: dict[str, Path], run_cli: Run, tmp_path: Path) -> None:
    data = run_json(run_cli, tmp_path, "arbitrage", "--data", str(folders[name]))
    outcomes, _ = load_market(folders[name])
    margin, market, cost = (np.array(data[key], dtype=float) for key in ("margin", "market_price", "arbitrage_cost"))
    assert np.all((margin >= -1) & (margin < 1))
    if name == "attempts":
        assert margin.max() < 0.95  # the nonsense was a 100 % margin here
    for k in sorted({0, len(margin) // 2, int(np.argmax(margin)), len(margin) - 1}):
        solve, spend = mixed(outcomes, *at_level(data, k))
        assert solve == pytest.approx(data["levels"][k], abs=1e-9)
        assert spend == pytest.approx(cost[k], rel=1e-9, abs=1e-12)
        if cost[k] < market[k]:
            assert margin[k] == pytest.approx((market[k] - cost[k]) / market[k], abs=1e-12)
    checked = data["cross_validated"]  # out of sample a plan may miss its solve rate and lose more than the price
    assert checked is not None and checked["folds"] == 5 and np.all(np.isfinite(checked["fold_margins"]))
    assert checked["mean"] < 1 and checked["in_sample"] == pytest.approx(margin.max())
    above = data["above_market"]
    reach = (outcomes.s > 0).mean(axis=0).max()
    assert above["best_single_solve_rate"] == pytest.approx(reach)
    assert above["best_cascade_solve_rate"] == pytest.approx((outcomes.s > 0).any(axis=1).mean())
    if above["levels"]:  # arbitrageur only: no provider reaches these levels, the printed cascade does
        last = len(above["levels"]) - 1
        assert min(above["levels"]) > reach
        solve, spend = mixed(outcomes, *at_level(above, last))
        assert solve == pytest.approx(above["levels"][last], abs=1e-9)
        assert spend == pytest.approx(above["arbitrage_cost"][last], rel=1e-9)
        result = run_cli("arbitrage", "--data", str(folders[name]), "--folds", "0")
        assert "no market price; arbitrageur only" in flat(result.out)


@pytest.mark.parametrize("name", MARKETS)
def test_arbitrage_paper_scheme(name: str, folders: dict[str, Path], run_cli: Run, tmp_path: Path) -> None:
    paper = run_json(run_cli, tmp_path, "arbitrage", "--data", str(folders[name]), "--scheme", "paper")
    margin = np.array(paper["margin"], dtype=float)
    assert np.all((margin >= 0) & (margin < 1))
    if name == "attempts":  # the paper's grid, placed by the market's own unit, agrees with the exact prices
        levels = f"{paper['levels'][0]!r}:{paper['levels'][-1]!r}:{len(paper['levels'])}"
        args = ("arbitrage", "--data", str(folders[name]), "--folds", "0", "--levels", levels)
        exact = run_json(run_cli, tmp_path, *args)
        ratio = np.array(paper["market_price"]) / np.array(exact["market_price"])
        # the grid neither mixes caps nor sees the unit steps: at one attempt's solve rate it charges up to 1.8
        # attempts where one suffices (the issue found 1643); above mid-range within 15 %, at the top within 7 %
        assert np.all((ratio >= 1 - 1e-9) & (ratio < 2)) and np.median(ratio) < 1.1
        assert np.all(ratio[len(ratio) // 2 :] < 1.15) and np.all(ratio[3 * len(ratio) // 4 :] < 1.07)
        assert margin.max() < 0.95


def _fit(run_cli: Run, folder: Path, out: Path, *extra: str) -> Plan:
    outcomes, _ = load_market(folder)
    target = round(0.8 * float((outcomes.s > 0).mean(axis=0).max()), 3)
    result = run_cli("plan", "fit", "--data", str(folder), "--target-solve-rate", str(target), "-o", str(out), *extra)
    assert result.code == 0, result.err
    assert "cross-validated margin" in flat(result.out)
    plan = Plan.load(out)
    assert plan.solve_rate == target
    solve, spend = mixed(outcomes, list(plan.cascades), list(plan.weights))
    assert solve == pytest.approx(plan.solve_rate, abs=1e-9)
    assert spend == pytest.approx(plan.spend, rel=1e-9)
    assert -1 <= plan.margin < 1
    assert plan.validation is not None and plan.validation.chosen.folds == 5
    return plan


@pytest.mark.parametrize("name", MARKETS)
def test_plan_fit_evaluate_and_robust(name: str, folders: dict[str, Path], run_cli: Run, tmp_path: Path) -> None:
    plain = _fit(run_cli, folders[name], tmp_path / "plain.json")
    assert plain.validation is not None and plain.validation.optimum is None
    served = run_json(run_cli, tmp_path, "plan", "evaluate", str(tmp_path / "plain.json"), "--data", str(folders[name]))
    assert served["served"]["margin"] == pytest.approx(plain.margin, abs=1e-9)  # its own data: in-sample
    robust = _fit(run_cli, folders[name], tmp_path / "robust.json", "--robust")
    assert robust.validation is not None and robust.validation.optimum is not None
    chosen, optimum = robust.validation.chosen, robust.validation.optimum
    assert chosen.mean >= optimum.mean - 1e-12  # the optimum is a candidate
    assert optimum.in_sample == pytest.approx(plain.margin, abs=1e-9)
    assert optimum.margins == pytest.approx(plain.validation.chosen.margins, abs=1e-9)
    assert all(-1 <= m < 1 for m in chosen.margins)


def test_robust_fit_is_deterministic(folders: dict[str, Path], run_cli: Run, tmp_path: Path) -> None:
    first = _fit(run_cli, folders["attempts"], tmp_path / "a.json", "--robust")
    second = _fit(run_cli, folders["attempts"], tmp_path / "b.json", "--robust")
    assert first.cascades == second.cascades and first.validation == second.validation


@pytest.mark.parametrize("name", MARKETS)
def test_market_commands(name: str, folders: dict[str, Path], run_cli: Run, tmp_path: Path) -> None:
    folder = str(folders[name])
    revenue = run_json(run_cli, tmp_path, "market", "revenue", "--data", folder)["revenue"]
    shares = np.array(list(revenue["shares_with"].values()), dtype=float)
    served = np.isfinite(np.array(revenue["market_price"], dtype=float))
    np.testing.assert_allclose(shares[:, served].sum(axis=0), 1.0, atol=1e-9)
    race = run_json(run_cli, tmp_path, "market", "compete", "--data", folder)
    settled, market = (np.array(race[key], dtype=float) for key in ("settled_price", "market_price"))
    cost = np.array(race["arbitrage_costs"]["arbitrageur A"], dtype=float)
    assert np.all(settled <= market * (1 + 1e-12)) and np.all(settled >= np.minimum(cost, market) * (1 - 1e-12))
    entry = run_json(run_cli, tmp_path, "market", "entry", "--data", folder, "--entrant", ENTRANT[name])
    for when in ("before", "after"):
        total = sum(v["average"] for v in entry["shares_with_arbitrage"][when].values())
        assert total == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("name", MARKETS)
def test_robust_command(name: str, folders: dict[str, Path], run_cli: Run, tmp_path: Path) -> None:
    data = run_json(run_cli, tmp_path, "robust", "--data", str(folders[name]), "-p", ROBUST_PAIR[name],
                    "--bootstraps", "40", "--executor", "serial")  # fmt: skip
    means = np.array(data["mean"], dtype=float)
    assert np.all((means >= -1) & (means < 1))
    assert data["providers"] == ROBUST_PAIR[name].split(",") and data["pair_choice"] is None


@pytest.mark.parametrize("name", MARKETS)
def test_robust_defaults_choose_the_pair(name: str, folders: dict[str, Path], run_cli: Run, tmp_path: Path) -> None:
    """No pair named: the two providers cheapest at the most levels of the exact segmentation (as `market
    revenue` reports it), cheapest attempt first, printed; the scales fit the pair's costs (not the paper's $1)."""
    folder, out = str(folders[name]), tmp_path / "robust.json"
    result = run_cli("robust", "--data", folder, "--bootstraps", "20", "--json", str(out))
    assert result.code == 0, result.err
    data = json.loads(out.read_text())
    first, second = data["providers"]
    assert f"pair: {first} → {second}" in flat(result.out) and flat(data["pair_choice"]) in flat(result.out)
    outcomes, _ = load_market(folders[name])
    mean_cost = outcomes.cost.mean(axis=0)
    assert mean_cost[outcomes.providers.index(first)] <= mean_cost[outcomes.providers.index(second)]
    segments = run_json(run_cli, tmp_path, "market", "revenue", "--data", folder)
    levels = np.array(segments["revenue"]["levels"], dtype=float)
    counts = {p: 0 for p in outcomes.providers}
    for band in segments["segmentation"]["bands"]:
        counts[band["provider"]] += int(((levels >= band["u_low"]) & (levels <= band["u_high"])).sum())
    ranked = sorted(counts, key=lambda p: -counts[p])
    assert {first, second} == set(ranked[:2]) if counts[ranked[1]] > 0 else ranked[0] in (first, second)
    means, p5, p95 = (np.array(data[key], dtype=float) for key in ("mean", "p5", "p95"))
    assert np.all(np.isfinite(means)) and np.all((means >= -1) & (means < 1)) and means.max() > 0
    assert np.all(p5 <= means + 1e-12) and np.all(means <= p95 + 1e-12)
    pair_costs = outcomes.select([first, second]).cost
    assert data["total_cap"] != 1.0 and np.median(pair_costs) <= data["total_cap"] <= 100 * pair_costs.max()


def test_robust_chooses_among_more_than_two_named(folders: dict[str, Path], run_cli: Run, tmp_path: Path) -> None:
    named = ["model-29", "model-10", "model-03", "model-20"]
    data = run_json(run_cli, tmp_path, "robust", "--data", str(folders["leaderboard"]), "-p", ",".join(named),
                    "--bootstraps", "4", "--executor", "serial")  # fmt: skip
    assert set(data["providers"]) < set(named) and len(data["providers"]) == 2 and data["pair_choice"]


def test_paper_scheme_market_commands_on_the_leaderboard(
    folders: dict[str, Path], run_cli: Run, tmp_path: Path
) -> None:
    """30 providers are more than the paper's cap grid holds: with default options the market commands search the
    providers cheapest somewhere, say which, and give revenue shares that add up."""
    folder, out = str(folders["leaderboard"]), tmp_path / "revenue.json"
    result = run_cli("market", "revenue", "--data", folder, "--scheme", "paper", "--json", str(out))
    assert result.code == 0, result.err
    data = json.loads(out.read_text())
    kept = data["arbitrage"]["providers"]
    assert 2 <= len(kept) <= 4 and f"({', '.join(kept)})" in flat(result.err)
    margin = np.array(data["arbitrage"]["margin"], dtype=float)
    assert np.all((margin >= 0) & (margin < 1))
    shares = np.array(list(data["revenue"]["shares_with"].values()), dtype=float)
    np.testing.assert_allclose(shares.sum(axis=0), 1.0, atol=1e-9)
    args = ("market", "entry", "--data", folder, "--scheme", "paper", "--entrant", "model-02")
    entry = run_json(run_cli, tmp_path, *args)
    assert len(entry["incumbents"]) <= 3 and "model-02" not in entry["incumbents"]
    for when in ("before", "after"):
        total = sum(v["average"] for v in entry["shares_with_arbitrage"][when].values())
        assert total == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("scheme", ["paper", "exact"])
def test_distill_levels_from_the_market(folders: dict[str, Path], run_cli: Run, tmp_path: Path, scheme: str) -> None:
    """Off the paper's data, each pair's levels come from its own data: in a one-attempt market from the weaker
    model's solve rate to the stronger one's (where they compete); --levels overrides them."""
    folder = folders["leaderboard"]
    args = ("market", "distill", "--data", str(folder), "--teacher", "model-29", "--students", "model-03,model-10",
            "--tokens", "1e6,1e7", "--scheme", scheme)  # fmt: skip
    data = run_json(run_cli, tmp_path, *args)
    outcomes, _ = load_market(folder)
    for student in data["students"]:
        pair = outcomes.select([student["student"], "model-29"])
        reach = (pair.s > 0).mean(axis=0)
        assert (student["levels"][0], student["levels"][-1]) == pytest.approx((reach.min(), reach.max()))
        assert 0 <= student["max_margin"] < 1 and len(student["levels"]) == 100
    given = run_json(run_cli, tmp_path, *args, "--levels", "0.2:best:7")
    assert all(len(s["levels"]) == 7 and s["levels"][0] == 0.2 for s in given["students"])
