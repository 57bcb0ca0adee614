"""Out-of-sample honesty: cross-validated margins beside in-sample ones, and plans served on other markets."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from conftest import CliResult
from modelarb.core.cascade import Cascade
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


# --- plan fit --robust: candidates scored by cross-validation ---


def test_quantised_search_is_the_cheapest_grid_mix(tmp_path: Path) -> None:
    from modelarb.core.robust_fit import quantised_search, stage_caps
    from test_any_market import brute_force

    outcomes, _ = load_market(attempts_market(tmp_path / "m"))
    order = ("prover-large", "prover-small")
    level = 0.6
    result = quantised_search(outcomes, np.array([level]), order, 4)
    cascades = [result.cascades[int(result.cascade_at[0])]]
    weights = [1.0]
    if result.partner_at is not None and result.partner_at[0] >= 0:
        cascades.append(result.cascades[int(result.partner_at[0])])
        weights = [1 - float(result.partner_weight[0]), float(result.partner_weight[0])]  # type: ignore[index]
    values = [brute_force(outcomes, c) for c in cascades]
    assert sum(w * v[0] for w, v in zip(weights, values, strict=True)) == pytest.approx(level, abs=1e-9)
    assert sum(w * v[1] for w, v in zip(weights, values, strict=True)) == pytest.approx(result.arbitrage_cost[0])
    grid = [stage_caps(outcomes, p, 4) for p in outcomes.provider_index(order)]
    assert all(len(g) == 5 and g[0] == 0 for g in grid)
    for first in grid[0]:  # no single grid cascade reaching the level is cheaper than the mix
        for second in grid[1]:
            solve, spend = brute_force(outcomes, Cascade(order, (first, second)))
            if solve >= level:
                assert spend >= result.arbitrage_cost[0] - 1e-9


def test_robust_fit_chooses_the_best_cross_validated_candidate(tmp_path: Path) -> None:
    from modelarb.core.robust_fit import robust_fit

    outcomes, _ = load_market(leaderboard(tmp_path / "board", providers=6, instances=60))
    level = round(0.8 * float((outcomes.s > 0).mean(axis=0).max()), 3)
    found = robust_fit(outcomes, level, folds=4, seed=3)
    feasible = [s for s in found.scored if s.validated is not None]
    assert found.chosen.validated is not None and found.optimum is found.scored[0]
    assert found.chosen.validated.mean == max(s.validated.mean for s in feasible if s.validated)
    assert found.optimum.validated == cross_validate(outcomes, level, folds=4, seed=3)  # the in-sample optimum
    refit = found.chosen.candidate.plan(outcomes, level)  # the winner's caps refitted on all instances
    assert found.plan.cascades == refit.cascades and found.plan.weights == refit.weights
    validation = found.plan.validation
    assert validation is not None and validation.optimum == found.optimum.validated
    assert validation.label == found.chosen.candidate.label and validation.candidates == len(found.scored)
    assert found.plan.method.startswith("robust fit")
    again = robust_fit(outcomes, level, folds=4, seed=3)
    assert again.plan.cascades == found.plan.cascades and again.plan.validation == validation
    from modelarb.core.plan import Plan

    assert Plan.from_dict(json.loads(json.dumps(found.plan.to_dict()))) == found.plan


def test_a_broken_cross_validation_field_is_refused(tmp_path: Path) -> None:
    from modelarb.core.plan import Plan
    from modelarb.errors import DataError

    outcomes, _ = load_market(attempts_market(tmp_path / "m"))
    data = fit(outcomes, target_solve_rate=0.5).to_dict()
    data["cross_validation"] = {"rule": "x"}
    with pytest.raises(DataError, match="cross_validation"):
        Plan.from_dict(data)


def test_plan_fit_robust_cli(tmp_path: Path, run_cli: Run) -> None:
    folder = attempts_market(tmp_path / "m")
    out = tmp_path / "plan.json"
    result = run_cli("plan", "fit", "--data", str(folder), "--target-solve-rate", "0.6", "--robust", "-o", str(out))
    assert result.code == 0, result.err
    text = flat(result.out)
    assert "(chosen)" in text and "in-sample optimum: cross-validated margin" in text
    saved = json.loads(out.read_text())["cross_validation"]
    shown = run_cli("plan", "show", str(out))
    assert shown.code == 0 and "in-sample optimum: cross-validated margin" in flat(shown.out)
    assert saved["in_sample_optimum"]["folds"] == 5 and saved["chosen"]["mean"] >= saved["in_sample_optimum"]["mean"]
    for args in (["--scheme", "paper"], ["--folds", "0"]):
        refused = run_cli("plan", "fit", "--data", str(folder), "--target-solve-rate", "0.6", "--robust",
                          "-o", str(tmp_path / "x.json"), *args)  # fmt: skip
        assert refused.code == 2 and "--robust fits a --target-solve-rate in the exact scheme" in flat(refused.err)
    no_target = run_cli("plan", "fit", "--data", str(folder), "--max-price", "3", "--robust", "-o", str(out))
    assert no_target.code == 2 and "--robust" in flat(no_target.err)


# --- above the best single provider ---


def test_above_the_market_the_arbitrageur_sells_alone(tmp_path: Path, run_cli: Run) -> None:
    from modelarb.core.beyond import beyond_market
    from test_any_market import brute_force

    folder = attempts_market(tmp_path / "m")
    outcomes, _ = load_market(folder)
    single, top = float((outcomes.s > 0).mean(axis=0).max()), float((outcomes.s > 0).any(axis=1).mean())
    assert top > single  # the weak prover solves theorems the strong one never does
    above = beyond_market(outcomes)
    assert above.result is not None and above.result.levels[0] > single and above.result.levels[-1] == top
    assert np.all(np.isinf(above.result.market_price)) and np.all(np.isfinite(above.result.arbitrage_cost))
    main = above.result.cascades[int(above.result.cascade_at[-1])]
    assert brute_force(outcomes, main) == pytest.approx((top, above.result.arbitrage_cost[-1]))
    u = float((single + top) / 2)
    out = tmp_path / "plan.json"
    result = run_cli("plan", "fit", "--data", str(folder), "--target-solve-rate", f"{u!r}", "-o", str(out))
    assert result.code == 0, result.err
    text = flat(result.out)
    cost = float(beyond_market(outcomes, np.array([u])).result.arbitrage_cost[0])  # type: ignore[union-attr]
    assert "no market price; arbitrageur only" in text and f"C_A(u) = {cost:.4g} attempts" in text
    assert "no plan written" in text and not out.exists()
    beyond = run_cli(
        "plan", "fit", "--data", str(folder), "--target-solve-rate", f"{min(top + 0.01, 1)!r}", "-o", str(out)
    )
    assert beyond.code == 2 and "no cascade reaches" in flat(beyond.err)
    levels = run_cli(
        "arbitrage", "--data", str(folder), "--folds", "0", "--levels", f"0.3:{top!r}:50", "--json", str(out)
    )
    assert levels.code == 0, levels.err
    data = json.loads(out.read_text())
    assert max(data["levels"]) <= single + 1e-12 and min(data["above_market"]["levels"]) > single
    assert len(data["levels"]) + len(data["above_market"]["levels"]) == 50
    too_high = run_cli("arbitrage", "--data", str(folder), "--levels", f"0.3:{min(top + 0.01, 1)!r}:50")
    assert too_high.code == 2 and "the best cascade" in flat(too_high.err)
