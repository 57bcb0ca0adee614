"""Out-of-sample honesty: cross-validated margins beside in-sample ones, and plans served on other markets."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from conftest import CliResult
from modelarb.core.exact_curves import provider_cost_curves
from modelarb.core.holdout import cross_validate, folds_of, serve_plan
from modelarb.core.plan import fit
from modelarb.data.market import load_market
from modelarb.errors import AnalysisError
from synthetic_markets import attempts_market, leaderboard
from test_cli_arbitrage import flat

Run = Callable[..., CliResult]


def test_folds_partition_the_instances() -> None:
    fold = folds_of(23, 5, seed=4)
    assert sorted(np.bincount(fold).tolist()) == [4, 4, 5, 5, 5]
    assert np.array_equal(fold, folds_of(23, 5, seed=4))
    with pytest.raises(AnalysisError, match="2 to 23 folds"):
        folds_of(23, 1, seed=0)


def test_a_plan_served_on_its_own_data_earns_its_in_sample_margin(tmp_path: Path) -> None:
    outcomes, _ = load_market(attempts_market(tmp_path / "m"))
    plan = fit(outcomes, target_solve_rate=0.7)
    served = serve_plan(plan, outcomes)
    assert served.solve_rate == pytest.approx(plan.solve_rate, abs=1e-9)
    assert served.spend == pytest.approx(plan.spend, rel=1e-9)
    assert served.margin == pytest.approx(plan.margin, abs=1e-9)


def test_held_out_margin_by_brute_force(tmp_path: Path) -> None:
    """Each fold's margin is what the fold's plan earns on the held-out instances, recomputed by hand."""
    outcomes, _ = load_market(attempts_market(tmp_path / "m"))
    checked = cross_validate(outcomes, 0.7, folds=3, seed=2)
    fold = folds_of(outcomes.n_instances, 3, 2)
    for k in range(3):
        plan = fit(outcomes.select(instances=fold != k), target_solve_rate=0.7)
        test = outcomes.select(instances=fold == k)
        solve = spend = 0.0
        for cascade, weight in zip(plan.cascades, plan.weights, strict=True):
            unsolved = np.ones(test.n_instances)
            for p, cap in zip(cascade.providers, cascade.caps, strict=True):
                col = test.providers.index(p)
                for i in range(test.n_instances):  # attempt by attempt, without replacement
                    n, s, c = int(test.n[i, col]), int(test.s[i, col]), float(test.cost[i, col])
                    fail_so_far, bought = 1.0, 0
                    while (bought + 1) * c <= cap * (1 + 1e-12) and bought < n:
                        spend += weight * unsolved[i] * fail_so_far * c / test.n_instances
                        fail_so_far *= (n - s - bought) / (n - bought) if n - bought else 0.0
                        bought += 1
                    unsolved[i] *= fail_so_far
            solve += weight * float((1 - unsolved).mean())
        price = float(provider_cost_curves(test, np.array([solve])).min())
        assert checked.margins[k] == pytest.approx((price - spend) / price, abs=1e-9)
        assert checked.solve_rates[k] == pytest.approx(solve, abs=1e-9)
    low, high = checked.interval
    assert low <= checked.mean <= high


def test_one_attempt_leaderboard_in_sample_overstates(tmp_path: Path) -> None:
    outcomes, _ = load_market(leaderboard(tmp_path / "board", providers=8, instances=80))
    best = float((outcomes.s > 0).mean(axis=0).max())
    checked = cross_validate(outcomes, round(0.9 * best, 3), folds=4)
    assert checked.in_sample > checked.mean + 0.05
    assert checked.warning() is not None


def test_plan_fit_prints_both_margins_and_plan_evaluate(tmp_path: Path, run_cli: Run) -> None:
    folder = attempts_market(tmp_path / "m")
    outcomes, _ = load_market(folder)
    fold = folds_of(outcomes.n_instances, 2, 0)
    for half in (0, 1):  # two halves written as two markets
        half_dir = tmp_path / f"half{half}"
        half_dir.mkdir()
        for src in folder.glob("*.jsonl"):
            lines = src.read_text().splitlines()
            keep = [line for line in lines if fold[outcomes.instances.tolist().index(json.loads(line)["id"])] == half]
            (half_dir / src.name).write_text("\n".join(keep) + "\n")
    plan_path = tmp_path / "plan.json"
    fitted = run_cli("plan", "fit", "--data", str(tmp_path / "half0"), "--target-solve-rate", "0.6",
                     "-o", str(plan_path), "--folds", "3")  # fmt: skip
    assert fitted.code == 0, fitted.err
    assert "cross-validated margin" in flat(fitted.out) and "3 folds" in flat(fitted.out)
    out = tmp_path / "eval.json"
    evaluated = run_cli("plan", "evaluate", str(plan_path), "--data", str(tmp_path / "half1"), "--json", str(out))
    assert evaluated.code == 0, evaluated.err
    served = json.loads(out.read_text())["served"]
    half1, _ = load_market(tmp_path / "half1")
    from modelarb.core.plan import Plan

    direct = serve_plan(Plan.load(plan_path), half1)
    assert served["margin"] == pytest.approx(direct.margin) and served["solve_rate"] == pytest.approx(direct.solve_rate)
    wrong = run_cli("plan", "evaluate", str(plan_path), "--data", str(tmp_path / "half1"), "--unit", "USD")
    assert wrong.code != 0 and "priced in attempts" in flat(wrong.err)


def test_pair_market_at_074(paper_data: Path, run_cli: Run, tmp_path: Path) -> None:
    result = run_cli("plan", "fit", "--data", str(paper_data / "swebench"), "--providers", "gpt5mini,deepseek",
                     "--target-solve-rate", "0.74", "-o", str(tmp_path / "plan.json"))  # fmt: skip
    assert result.code == 0, result.err
    text = flat(result.out)
    assert "in-sample 32.6%" in text and "cross-validated margin 17.5%" in text
    assert "differs from the cross-validated" in flat(result.err)


def test_arbitrage_reports_the_cross_validated_margin(tmp_path: Path, run_cli: Run) -> None:
    folder = attempts_market(tmp_path / "m")
    out = tmp_path / "r.json"
    result = run_cli("arbitrage", "--data", str(folder), "--folds", "3", "--json", str(out))
    assert result.code == 0, result.err
    data = json.loads(out.read_text())
    checked = data["cross_validated"]
    assert checked["folds"] == 3 and len(checked["fold_margins"]) == 3
    assert checked["in_sample"] == pytest.approx(data["max_margin"])
    assert checked["low"] <= checked["mean"] <= checked["high"]
    assert "cross-validated margin" in flat(result.out)
    skipped = run_cli("arbitrage", "--data", str(folder), "--folds", "0", "--json", str(out))
    assert skipped.code == 0 and json.loads(out.read_text())["cross_validated"] is None
