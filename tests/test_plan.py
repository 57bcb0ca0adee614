"""Plans: fitting to a target solve rate or a maximum price, saving, loading with validation, and the CLI."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CliResult
from modelarb.core.cascade import Cascade
from modelarb.core.exact_curves import evaluate
from modelarb.core.live import CAP_RULE, attempt_costs, live_figures, mixed_live_figures
from modelarb.core.plan import FORMAT_VERSION, Plan, fingerprint, fit
from modelarb.core.search import SCHEMES, Scheme, best_solve_rate, search
from modelarb.data import Outcomes, load_market
from modelarb.errors import AnalysisError, DataError, ModelarbError
from test_cli_arbitrage import flat, write_market

Run = Callable[..., CliResult]


def random_market(seed: int, instances: int = 10, providers: int = 2) -> Outcomes:
    """A small market generated in code: provider p dearer and stronger than p − 1."""
    rng = np.random.default_rng(seed)
    shape = (instances, providers)
    n = rng.integers(1, 9, shape)
    strength = (np.arange(providers) + 1) / (providers + 1)
    s = rng.binomial(n, strength * rng.random(shape))
    cost = 0.005 * (1 + 3 * np.arange(providers)) * rng.uniform(0.5, 1.5, shape)
    return Outcomes(
        instances=np.array([f"repo__repo-{i}" for i in range(instances)]),
        providers=tuple(f"p{k}" for k in range(providers)),
        n=n,
        s=s,
        cost=cost,
        source=f"synthetic seed {seed}",
    )


@pytest.fixture
def market() -> Outcomes:
    return random_market(3)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), fraction=st.floats(0.05, 1.0), scheme=st.sampled_from(SCHEMES))
def test_target_plan_is_the_cheapest_cascade_at_u(seed: int, fraction: float, scheme: Scheme) -> None:
    market = random_market(seed)
    u = fraction * best_solve_rate(market, scheme)
    plan = fit(market, target_solve_rate=u, scheme=scheme)
    result = search(market, np.array([u]), scheme, select="per_level")
    assert plan.solve_rate == u and plan.target_solve_rate == u and plan.max_price is None
    assert plan.spend == pytest.approx(result.arbitrage_cost[0], rel=1e-12)
    assert plan.market_price == pytest.approx(result.market_price[0], rel=1e-12)
    assert plan.margin == pytest.approx(max(plan.market_price - plan.spend, 0) / plan.market_price, abs=1e-12)
    assert 0 <= plan.margin < 1
    assert sum(plan.weights) == pytest.approx(1.0) and len(plan.cascades) == len(plan.weights) in (1, 2)
    assert sum(plan.spend_by_provider) == pytest.approx(plan.spend, rel=1e-9)
    assert plan.order == plan.cascades[0].providers and set(plan.order) <= set(market.providers)
    assert plan.scheme == scheme and plan.cost_unit == market.unit
    assert plan.fitted_on.instances == market.n_instances and plan.fitted_on.source == market.source
    assert Plan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


@pytest.mark.parametrize("scheme", SCHEMES)
def test_max_price_plan_is_the_highest_affordable_level(market: Outcomes, scheme: Scheme) -> None:
    levels = np.linspace(0.05, best_solve_rate(market, scheme), 40)
    result = search(market, levels, scheme, select="per_level")
    price = float(np.median(result.arbitrage_cost))
    plan = fit(market, max_price=price, scheme=scheme, levels=levels)
    assert plan.max_price == price and plan.target_solve_rate is None
    assert plan.spend <= price
    k = int(np.flatnonzero(levels == plan.solve_rate)[0])
    assert plan.spend == pytest.approx(result.arbitrage_cost[k], rel=1e-12)
    assert np.all(result.arbitrage_cost[k + 1 :] > price)


def test_max_price_default_levels_reach_the_best_when_money_is_no_object(market: Outcomes) -> None:
    plan = fit(market, max_price=1e6, scheme="paper")
    assert plan.solve_rate == pytest.approx(best_solve_rate(market, "paper"), abs=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of"),
        ({"target_solve_rate": 0.3, "max_price": 0.1}, "exactly one of"),
        ({"target_solve_rate": 1.5}, "solve rates must lie in"),
        ({"target_solve_rate": 0.0}, "solve rates must lie in"),
        ({"target_solve_rate": 0.3, "levels": np.array([0.2, 0.3])}, "levels apply to fitting a maximum price"),
        ({"max_price": -1.0}, "must be a positive number"),
        ({"max_price": float("nan")}, "must be a positive number"),
        ({"max_price": 1e-9}, "no cascade reaches any of the solve rates"),
        ({"max_price": 1.0, "levels": np.array([])}, "empty"),
    ],
)
def test_fit_refuses_bad_targets(market: Outcomes, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(AnalysisError, match=message):
        fit(market, scheme="paper", **kwargs)


def test_plan_is_immutable(market: Outcomes) -> None:
    plan = fit(market, target_solve_rate=0.3, scheme="paper")
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.margin = 0.9  # type: ignore[misc]


def test_fingerprint_follows_the_data(market: Outcomes) -> None:
    assert fingerprint(market) == fingerprint(random_market(3))
    assert fingerprint(market).startswith("sha256:")
    cost = market.cost.copy()
    cost[0, 0] *= 1 + 1e-12
    assert fingerprint(dataclasses.replace(market, cost=cost)) != fingerprint(market)
    assert fingerprint(market.select(["p1", "p0"])) != fingerprint(market)


def test_save_and_load_round_trip(market: Outcomes, tmp_path: Path) -> None:
    plan = fit(market, max_price=0.05, scheme="exact")
    path = tmp_path / "plan.json"
    plan.save(path)
    assert Plan.load(path) == plan
    payload = json.loads(path.read_text())
    assert payload["format_version"] == FORMAT_VERSION
    assert {"providers", "cascades", "solve_rate", "spend_per_task", "spend_by_provider", "market_price", "margin",
            "cost_unit", "fitted_on", "created_at", "modelarb_version"} <= payload.keys()  # fmt: skip


def test_save_to_a_missing_folder_is_one_clear_error(market: Outcomes, tmp_path: Path) -> None:
    plan = fit(market, target_solve_rate=0.3, scheme="paper")
    with pytest.raises(ModelarbError, match=r"cannot write .*plan\.json"):
        plan.save(tmp_path / "missing" / "plan.json")


def _mutated(plan: dict[str, Any], change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    data = json.loads(json.dumps(plan))
    change(data)
    return data


BAD_PLANS: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("newer format", lambda d: d.update(format_version=FORMAT_VERSION + 1), "newer than this modelarb reads"),
    ("format zero", lambda d: d.update(format_version=0), "at least 1"),
    ("format as text", lambda d: d.update(format_version="1"), "'format_version' must be int"),
    ("not a plan", lambda d: d.update(kind="something"), "not a plan"),
    ("no margin", lambda d: d.pop("margin"), "no field 'margin'"),
    ("no providers", lambda d: d.pop("providers"), "no field 'providers'"),
    ("empty market", lambda d: d.update(providers=[]), "'providers' must be a list of provider names"),
    ("spend as text", lambda d: d.update(spend_per_task="cheap"), "'spend_per_task' must be int or float"),
    ("spend as bool", lambda d: d.update(spend_per_task=True), "'spend_per_task' must be int or float"),
    ("no cascades", lambda d: d.update(cascades=[]), "one cascade or a mix of two"),
    ("cascade not object", lambda d: d.update(cascades=[1]), "must be an object"),
    ("unknown provider", lambda d: d["cascades"][0].update(order=["p0", "zz"]), "not in its market: zz"),
    ("negative cap", lambda d: d["cascades"][0].update(caps=[-1.0, 0.5]), "caps must be >= 0"),
    ("cap as text", lambda d: d["cascades"][0].update(caps=["a", 0.5]), "caps must be finite numbers"),
    ("caps mismatch", lambda d: d["cascades"][0].update(caps=[0.1]), "one cap per provider"),
    ("weight", lambda d: d["cascades"][0].update(weight=0.5), "weights must add up to 1"),
    ("spend by provider", lambda d: d["spend_by_provider"].pop("p0"), "name each of its providers"),
    ("no target", lambda d: d.update(target={"solve_rate": None, "max_price": None}), "exactly one of"),
    ("scheme", lambda d: d.update(scheme="magic"), "scheme must be one of"),
    ("created", lambda d: d.update(created_at="yesterday"), "ISO 8601"),
    ("instances", lambda d: d["fitted_on"].update(instances=1.5), "'fitted_on.instances' must be int"),
    ("solve rate", lambda d: d.update(solve_rate=1.5), "solve_rate must lie in"),
    ("no attempt cost", lambda d: d.pop("attempt_cost"), "no field 'attempt_cost'"),
    ("attempt cost", lambda d: d["attempt_cost"].pop("p1"), "attempt_cost must name each of its providers"),
    ("attempt cost < 0", lambda d: d["attempt_cost"].update(p0=-0.1), "attempt_cost must be >= 0"),
    ("attempt cost text", lambda d: d["attempt_cost"].update(p0="x"), "'attempt_cost.p0' must be int or float"),
    ("no cap rule", lambda d: d.pop("cap_rule"), "no field 'cap_rule'"),
    ("cap rule", lambda d: d["cap_rule"].update(name="whatever-fits"), "this modelarb serves 'expected-attempt-fits'"),
    ("cap placement", lambda d: d["cap_rule"].update(caps="as-fitted"), "refit the plan"),
    ("cap rule text", lambda d: d["cap_rule"].pop("text"), "no field 'cap_rule.text'"),
    ("no live", lambda d: d.pop("live"), "no field 'live'"),
    ("live solve rate", lambda d: d["live"].update(solve_rate=1.5), "live solve_rate must lie in"),
    ("live spend", lambda d: d["live"].pop("spend_per_task"), "no field 'live.spend_per_task'"),
    ("live by provider", lambda d: d["live"]["spend_by_provider"].pop("p0"), "live.spend_by_provider must name"),
]


@pytest.mark.parametrize(("case", "change", "message"), BAD_PLANS, ids=[case for case, _, _ in BAD_PLANS])
def test_load_rejects_bad_plans(
    market: Outcomes, tmp_path: Path, case: str, change: Callable[[dict[str, Any]], Any], message: str
) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(_mutated(fit(market, target_solve_rate=0.3, scheme="paper").to_dict(), change)))
    with pytest.raises(DataError, match=message) as info:
        Plan.load(path)
    assert str(path) in str(info.value)


def _format_1(plan: Plan) -> dict[str, Any]:
    """The plan as format 1 wrote it: no attempt_cost, cap_rule or live."""
    data = plan.to_dict()
    for name in ("attempt_cost", "cap_rule", "live"):
        data.pop(name)
    data["format_version"] = 1
    return data


def test_format_1_plans_load_but_cannot_be_served_live(market: Outcomes, tmp_path: Path) -> None:
    plan = fit(market, target_solve_rate=0.3, scheme="exact")
    assert plan.format_version == FORMAT_VERSION == 2
    assert plan.require_live() == attempt_costs(market)
    path = tmp_path / "old.json"
    path.write_text(json.dumps(_format_1(plan)))
    old = Plan.load(path)
    assert old.format_version == 1 and old.attempt_cost is None and old.cap_rule is None and old.live is None
    assert old.cascades == plan.cascades and old.solve_rate == plan.solve_rate
    with pytest.raises(DataError, match=r"plan format 1 has no cap rule; refit it with `modelarb plan fit`"):
        old.require_live()
    old.save(path)  # written back as format 1, without the new fields
    assert json.loads(path.read_text()) == _format_1(plan) and Plan.load(path) == old


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), fraction=st.floats(0.05, 1.0))
def test_fitted_caps_sit_mid_way_between_breakpoints(seed: int, fraction: float) -> None:
    """The search's caps, moved mid-way: the same figures, and nudging a cap by 1e-9 changes nothing."""
    market = random_market(seed)
    u = fraction * best_solve_rate(market, "exact")
    plan = fit(market, target_solve_rate=u, scheme="exact")
    result = search(market, np.array([u]), "exact", select="per_level")
    fitted = [result.cascades[int(result.cascade_at[0])]]
    if result.partner_at is not None and result.partner_at[0] >= 0:
        fitted.append(result.cascades[int(result.partner_at[0])])
    before, after = evaluate(market, fitted), evaluate(market, plan.cascades)
    np.testing.assert_allclose(after.solve, before.solve, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(after.spend, before.spend, rtol=1e-12, atol=1e-15)
    weights = np.array(plan.weights)
    assert weights @ after.solve == pytest.approx(plan.solve_rate, abs=1e-9)
    assert weights @ after.spend == pytest.approx(plan.spend, rel=1e-9)
    for cascade in plan.cascades:
        for m in range(len(cascade.caps)):
            for factor in (1 - 1e-9, 1 + 1e-9):
                nudged = Cascade(
                    cascade.providers, tuple(c * factor if j == m else c for j, c in enumerate(cascade.caps))
                )
                model, model_nudged = evaluate(market, [cascade]), evaluate(market, [nudged])
                assert (model_nudged.solve[0], model_nudged.spend[0]) == (model.solve[0], model.spend[0])
                first = plan.require_live()
                live, live_nudged = live_figures(market, cascade, first), live_figures(market, nudged, first)
                assert live_nudged.solve_rate == live.solve_rate  # truncated attempts cost the cap: spend may move
                assert live_nudged.spend == pytest.approx(live.spend, rel=2e-9)
    assert plan.live == mixed_live_figures(market, plan.cascades, plan.weights, plan.require_live())
    assert plan.cap_rule == CAP_RULE and plan.live is not None and 0 <= plan.live.solve_rate <= plan.solve_rate + 1e-12


@pytest.mark.parametrize(
    ("text", "message"), [("{not json", "invalid JSON at line 1"), ("[1, 2]", "expected a JSON object")]
)
def test_load_rejects_non_plans(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "plan.json"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        Plan.load(path)
    with pytest.raises(DataError, match="no such plan file"):
        Plan.load(tmp_path / "missing.json")


# --- CLI ---


def test_cli_fit_then_show(tmp_path: Path, run_cli: Run) -> None:
    folder = write_market(tmp_path / "market")
    out = tmp_path / "plan.json"
    fitted = run_cli("plan", "fit", "--data", str(folder), "--target-solve-rate", "0.3", "--scheme", "paper", "-o",
                     str(out))  # fmt: skip
    assert fitted.code == 0, fitted.err
    plan = Plan.load(out)
    assert plan.solve_rate == 0.3 and plan.scheme == "paper"
    shown = run_cli("plan", "show", str(out))
    assert shown.code == 0, shown.err
    text = flat(shown.out)
    assert plan.cascades[0].describe(plan.cost_unit) in text
    assert f"expected solve rate {plan.solve_rate:.4f}" in text
    assert plan.fitted_on.fingerprint[:20] in text
    assert plan.live is not None and f"{plan.live.solve_rate:.4f} (live, under the cap rule)" in text
    assert "cap rule expected-attempt-fits, caps at interval-midpoints" in text
    old = tmp_path / "old.json"
    old.write_text(json.dumps(_format_1(plan)))
    shown_old = run_cli("plan", "show", str(old))
    assert shown_old.code == 0, shown_old.err
    unboxed = flat(shown_old.out.replace("│", " "))  # the cell wraps over rows of the table
    assert "cap rule none (plan format 1): refit it with `modelarb plan fit` to serve it live" in unboxed


def test_cli_fit_max_price_with_levels(tmp_path: Path, run_cli: Run) -> None:
    folder = write_market(tmp_path / "market")
    out = tmp_path / "plan.json"
    fitted = run_cli("plan", "fit", "--data", str(folder), "--max-price", "0.02", "--levels", "0.05:best:50", "-o",
                     str(out))  # fmt: skip
    assert fitted.code == 0, fitted.err
    plan = Plan.load(out)
    assert plan.max_price == 0.02 and plan.spend <= 0.02 and plan.scheme == "exact"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give exactly one of --target-solve-rate U and --max-price P"),
        (["--target-solve-rate", "0.3", "--max-price", "1"], "give exactly one of"),
        (["--target-solve-rate", "0.3", "--levels", "0.1:0.3:5"], "--levels applies with --max-price only"),
        (["--target-solve-rate", "7"], "solve rates must lie in"),
        (["--max-price", "0.01", "--levels", "0.1:0.3"], "is not start:stop:count"),
        (["--target-solve-rate", "abc"], "Invalid value for '--target-solve-rate'"),
        (["--target-solve-rate", "0.3", "--providers", "p0,zz"], "unknown provider 'zz'"),
    ],
)
def test_cli_fit_errors(tmp_path: Path, run_cli: Run, args: list[str], message: str) -> None:
    folder = write_market(tmp_path / "market")
    result = run_cli("plan", "fit", "--data", str(folder), "-o", str(tmp_path / "plan.json"), *args)
    assert result.code != 0 and "Traceback" not in result.err
    assert message in flat(result.err)
    assert not (tmp_path / "plan.json").exists()


def test_cli_show_errors(tmp_path: Path, run_cli: Run) -> None:
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({"kind": "modelarb.plan", "format_version": FORMAT_VERSION + 1}))
    result = run_cli("plan", "show", str(newer))
    assert result.code != 0 and "newer than this modelarb reads" in flat(result.err) and "Traceback" not in result.err
    missing = run_cli("plan", "show", str(tmp_path / "missing.json"))
    assert missing.code != 0 and "no such plan file" in flat(missing.err)


@pytest.mark.data
def test_pair_market_plan_beats_the_mean_margin_caps_at_its_level(paper_data: Path) -> None:
    """Fitted at u = 0.74 alone, the plan is at least as cheap as the paper's mean-margin cap vector there."""
    outcomes, _ = load_market(paper_data / "swebench", ["gpt5mini", "deepseek"])
    plan = fit(outcomes, target_solve_rate=0.74, scheme="paper")
    levels = np.linspace(0.68, best_solve_rate(outcomes, "paper"), 1000)
    paper_pair = search(outcomes, levels, "paper")
    k = int(np.abs(levels - 0.74).argmin())
    assert plan.margin >= paper_pair.margin[k] - 0.005
    assert plan.margin == pytest.approx(0.267, abs=0.02)
    assert plan.fitted_on.instances == 445


@pytest.mark.data
def test_pair_market_plan_served_live_keeps_its_figures(paper_data: Path) -> None:
    """At u = 0.74 (exact), every attempt of the plan's cascades fits its cap, so live differs from the model only
    where an attempt's cost exceeds a cap. Tolerance: 0.005 in solve rate and 2% in spend, well inside the plan's
    margin over the market price (~27%)."""
    outcomes, _ = load_market(paper_data / "swebench", ["gpt5mini", "deepseek"])
    plan = fit(outcomes, target_solve_rate=0.74, scheme="exact")
    assert plan.live is not None and plan.attempt_cost is not None
    assert plan.live.solve_rate == pytest.approx(plan.solve_rate, abs=0.005)
    assert plan.live.spend == pytest.approx(plan.spend, rel=0.02)
    assert plan.live.spend < plan.market_price
    assert plan.attempt_cost == pytest.approx(tuple(outcomes.cost.mean(axis=0)), rel=1e-12)
