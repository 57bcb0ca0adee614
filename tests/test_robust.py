"""Robust arbitrage on small synthetic markets: domains, sampling, fit, bootstrap, executors, CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelarb.cli.output import jsonable
from modelarb.core.grid import BudgetGrid, cascade_curves, pass_curves
from modelarb.data.outcomes import Outcomes
from modelarb.errors import AnalysisError, DataError
from modelarb.robust import (
    DaskExecutor,
    ProcessExecutor,
    RobustScheme,
    SerialExecutor,
    domain_mask,
    executor_for,
    known_domains,
    run,
)
from modelarb.robust.bootstrap import FitProblem, bootstrap_rng, fit_bootstraps
from modelarb.robust.cascades import SampleCascades
from modelarb.robust.fit import evaluation_margins, fit_caps
from modelarb.robust.pair import choose_pair
from modelarb.robust.sampling import FitSampler, draw_cost

BUDGETS = BudgetGrid().budgets
SCHEME = RobustScheme()


def synthetic_market(seed: int = 0, per_repo: int = 30, attempts: int = 8) -> Outcomes:
    """A cheap weak provider and a dear strong one on two repositories; hard instances are hard for both."""
    rng = np.random.default_rng(seed)
    ids = [f"django__django-{k}" for k in range(per_repo)] + [f"sympy__sympy-{k}" for k in range(per_repo)]
    ease = rng.uniform(0.0, 1.0, len(ids))
    p = np.stack([ease**2, np.sqrt(ease) * 0.9], axis=1)
    p[rng.random(len(ids)) < 0.15] = 0.0  # some instances nobody solves
    n = np.full(p.shape, attempts)
    s = rng.binomial(attempts, p)
    cost = np.stack([rng.uniform(0.004, 0.012, len(ids)), rng.uniform(0.03, 0.06, len(ids))], axis=1)
    return Outcomes(instances=np.array(ids), providers=("cheap", "strong"), n=n, s=s, cost=cost)


MARKET = synthetic_market()


def small_run(executor: Any = "serial", **kwargs: Any) -> Any:
    args: dict[str, Any] = {"fit_budgets": (0.5, 2.0, 8.0), "bootstraps": 12, "seed": 7, "chunk_size": 5}
    args.update(kwargs)
    return run(MARKET, "not-django", "django", executor=executor, **args)


# domains


def test_domains_by_repository_prefix_complement_and_mapping() -> None:
    django = domain_mask(MARKET, "django")
    assert django.sum() == 30 and np.all(MARKET.repositories[django] == "django")
    assert np.array_equal(domain_mask(MARKET, "not-django"), ~django)
    assert np.array_equal(domain_mask(MARKET, "not-not-django"), django)
    assert domain_mask(MARKET, "all").all()
    assert np.array_equal(domain_mask(MARKET, "prefix:sympy__"), ~django)
    mapping = {"django__django-0": "first", "sympy__sympy-3": "first", "django__django-1": "second"}
    assert domain_mask(MARKET, "first", mapping).sum() == 2
    assert domain_mask(MARKET, "not-second", mapping).sum() == 59
    assert known_domains(MARKET, mapping) == ["all", "first", "second", "django", "sympy"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("flask", "unknown domain 'flask'"),
        ("not-", "unknown domain"),
        ("prefix:", "needs a text"),
        ("prefix:astropy", "has no instances"),
        ("not-all", "has no instances"),
    ],
)
def test_bad_domains_are_one_clear_error(spec: str, message: str) -> None:
    with pytest.raises(AnalysisError, match=message):
        domain_mask(MARKET, spec)


# sampling


def sampler(outcomes: Outcomes = MARKET, shared: bool = True) -> FitSampler:
    return FitSampler(pass_curves(outcomes, BUDGETS), BUDGETS, 0.5, shared)


def test_draws_follow_the_pass_curve_and_censor_at_the_cap() -> None:
    one = MARKET.select(instances=["django__django-3"])
    costs = sampler(one, shared=False).draw(np.random.default_rng(1), 40_000)
    curves = pass_curves(one, BUDGETS)[0]
    for b in (0.01, 0.05, 0.2):
        g = int(np.searchsorted(BUDGETS, b))
        assert np.mean(costs <= BUDGETS[g], axis=0) == pytest.approx(curves[:, g], abs=0.01)
    assert costs.max() <= 0.5 and costs.min() >= BUDGETS[0]
    never = MARKET.select(instances=np.asarray(MARKET.s.sum(axis=1) == 0))
    assert np.all(sampler(never).draw(np.random.default_rng(2), 500) == 0.5)


def test_shared_uniform_makes_costs_comonotone_within_an_instance() -> None:
    both = np.flatnonzero((MARKET.s > 0).all(axis=1) & (MARKET.s < MARKET.n).all(axis=1))[0]
    one = MARKET.select(instances=[str(MARKET.instances[both])])

    def comonotone(costs: np.ndarray) -> bool:
        order = np.lexsort((costs[:, 1], costs[:, 0]))
        return bool(np.all(np.diff(costs[order, 1]) >= 0))

    assert comonotone(sampler(one).draw(np.random.default_rng(3), 2000))
    assert not comonotone(sampler(one, shared=False).draw(np.random.default_rng(3), 2000))


def test_a_smaller_budget_buys_a_prefix_and_accounting_charges_as_documented() -> None:
    costs, charged = sampler().draw_until(np.random.default_rng(4), 20.0, "paper")
    assert charged[-1] > 20.0
    assert np.array_equal(charged, np.cumsum(costs[:, 1]))
    again, _ = sampler().draw_until(np.random.default_rng(4), 3.0, "paper")
    assert np.array_equal(again, costs[: len(again)])
    strict = draw_cost(costs, "strict")
    assert np.array_equal(strict, costs.sum(axis=1)) and np.all(strict >= draw_cost(costs, "paper"))
    with pytest.raises(AnalysisError, match="accounting"):
        draw_cost(costs, "lenient")


# fit and evaluation


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 400),
    st.integers(0, 2**32 - 1),
    st.lists(st.floats(0.0, 1.0), min_size=1, max_size=6),
)
def test_histogram_fit_curves_equal_cascade_curves_on_per_draw_pass_curves(
    n: int, seed: int, firsts: list[float]
) -> None:
    rng = np.random.default_rng(seed)
    costs = np.exp(rng.uniform(np.log(1e-5), np.log(0.5), (n, 2)))
    costs[rng.random((n, 2)) < 0.3] = 0.5
    costs[rng.random((n, 2)) < 0.2] = BUDGETS[rng.integers(0, len(BUDGETS), 1)]  # exactly on the grid
    caps = np.vstack([SCHEME.caps()[::7], np.array([[f, 1.0 - f] for f in firsts]), [[0.2, 0.3], [BUDGETS[3], 0.0]]])
    per_draw = (costs[:, :, None] <= BUDGETS).astype(float)
    single, cascade = SampleCascades(BUDGETS, caps).curves(costs)
    expected, _ = cascade_curves(per_draw, BUDGETS, caps)
    np.testing.assert_allclose(cascade, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(single, per_draw.mean(axis=0), rtol=0, atol=1e-12)


def test_fit_on_a_huge_sample_finds_caps_that_earn_on_the_full_data() -> None:
    caps = SCHEME.caps()
    costs = sampler().draw(np.random.default_rng(5), 20_000)
    chosen = fit_caps(costs, SCHEME, SampleCascades(BUDGETS, caps))
    scores = evaluation_margins(MARKET, SCHEME, caps)
    assert 0 < caps[chosen, 0] < 1.0
    assert scores[chosen] > 0.5 * scores.max() > 0
    assert np.all((scores >= 0) & (scores < 1))
    assert scores[0] == scores[-1] == 0.0  # each reduces to one provider


# bootstrap and run


def test_a_bootstrap_has_its_own_stream_whatever_the_chunking() -> None:
    spawned = np.random.Generator(np.random.PCG64(np.random.SeedSequence(3).spawn(6)[5]))
    assert bootstrap_rng(3, 5).random() == spawned.random() != bootstrap_rng(3, 6).random()
    problem = FitProblem(sampler(), SCHEME, SampleCascades(BUDGETS, SCHEME.caps()), np.array([1.0, 4.0]), "paper", 3)
    whole = fit_bootstraps(problem, 0, 6)
    parts = [fit_bootstraps(problem, 0, 2), fit_bootstraps(problem, 2, 6)]
    assert np.array_equal(whole.choice, np.hstack([p.choice for p in parts]))
    assert np.array_equal(whole.draws, np.hstack([p.draws for p in parts]))
    assert np.all(whole.draws[0] <= whole.draws[1])


def test_run_reports_margins_per_budget_and_counts_progress() -> None:
    done: list[int] = []
    result = small_run(progress=done.append)
    assert sum(done) == 12 and result.margins.shape == result.first_caps.shape == result.draws.shape == (3, 12)
    assert (result.fit_instances, result.eval_instances) == (30, 30)
    assert np.all(result.p5 <= result.mean + 1e-12) and np.all(result.mean <= result.p95 + 1e-12)
    assert np.all((result.margins >= 0) & (result.margins < 1))
    assert np.all(np.diff(result.draws.mean(axis=1)) > 0)
    payload = json.loads(json.dumps(jsonable(result.to_dict())))
    assert payload["fit_budgets"] == [0.5, 2.0, 8.0] and len(payload["margins"][0]) == 12
    assert {"mean", "p5", "p95", "mean_draws", "first_caps", "draws", "cost_unit"} <= payload.keys()


def test_a_budget_that_buys_no_draw_fits_nothing_and_earns_nothing() -> None:
    result = small_run(fit_budgets=(1e-6, 2.0))
    assert np.all(result.draws[0] == 0) and np.all(result.margins[0] == 0) and np.all(np.isnan(result.first_caps[0]))
    assert np.all(np.isfinite(result.first_caps[1]))


def test_strict_accounting_buys_fewer_draws_and_seeds_matter() -> None:
    paper, strict = small_run(), small_run(accounting="strict")
    assert np.all(strict.draws.mean(axis=1) < paper.draws.mean(axis=1))
    assert not np.array_equal(small_run(seed=8).draws, paper.draws)


def test_same_numbers_serially_with_processes_and_any_chunk_size() -> None:
    serial = small_run(SerialExecutor())
    processes = small_run(ProcessExecutor(workers=2), chunk_size=3)
    for field in ("margins", "first_caps", "draws"):
        np.testing.assert_array_equal(getattr(processes, field), getattr(serial, field))


def fail_first_chunk(shared: None, start: int, stop: int) -> int:
    if start == 0:
        raise ValueError("chunk 0 failed")
    return stop - start


def test_a_failing_chunk_surfaces_its_error_from_worker_processes() -> None:
    with pytest.raises(ValueError, match="chunk 0 failed"):
        dict(ProcessExecutor(workers=2).map_chunks(fail_first_chunk, None, [(0, 1), (1, 3), (3, 4)]))


def test_same_numbers_on_a_dask_cluster() -> None:
    distributed = pytest.importorskip("distributed")
    serial = small_run()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        dask = small_run(DaskExecutor(cluster.scheduler_address), chunk_size=4)
    for field in ("margins", "first_caps", "draws"):
        np.testing.assert_array_equal(getattr(dask, field), getattr(serial, field))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fit_budgets": ()}, "at least one fit budget"),
        ({"fit_budgets": (1.0, -2.0)}, "positive and finite"),
        ({"bootstraps": 0}, "bootstraps must be at least 1"),
        ({"accounting": "lenient"}, "unknown accounting"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"seed": -1}, "non-negative"),
    ],
)
def test_bad_run_options_are_one_clear_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(AnalysisError, match=message):
        small_run(**kwargs)


def test_robust_arbitrage_needs_exactly_two_providers() -> None:
    single = MARKET.select(providers=["cheap"])
    with pytest.raises(AnalysisError, match="exactly two providers"):
        run(single, bootstraps=1)


def _three(cost: list[float], s: list[list[int]]) -> Outcomes:
    """Three providers a, b, c on four instances, four recorded attempts each, one cost per provider."""
    n = np.full((4, 3), 4, dtype=np.int64)
    return Outcomes(
        instances=np.array(["i0", "i1", "i2", "i3"]),
        providers=("a", "b", "c"),
        n=n,
        s=np.array(s, dtype=np.int64),
        cost=np.tile(np.array(cost, dtype=np.float64), (4, 1)),
    )


def test_the_pair_is_the_two_cheapest_most_often_in_cascade_order() -> None:
    # c is dear and reaches everything; a is cheap and reaches half; b is never cheapest
    market = _three([0.5, 0.4, 2.0], [[4, 1, 4], [4, 1, 4], [0, 0, 4], [0, 0, 4]])
    choice = choose_pair(market, np.linspace(0.1, 1.0, 19))
    assert choice.providers == ("a", "c") and "a at" in choice.reason and "c at" in choice.reason


def test_a_provider_cheapest_everywhere_is_paired_with_the_highest_reach() -> None:
    # a is cheapest and reaches most; of the others b reaches three instances, c two
    market = _three([0.1, 0.5, 0.3], [[4, 1, 1], [4, 1, 1], [4, 1, 0], [1, 0, 0]])
    choice = choose_pair(market, np.linspace(0.1, 1.0, 19))
    assert choice.providers == ("a", "b") and "only cheapest" in choice.reason and "0.7500" in choice.reason


def test_executor_choice_and_bad_clusters() -> None:
    assert isinstance(executor_for("serial"), SerialExecutor)
    assert executor_for(None, workers=3) == ProcessExecutor(3)
    assert executor_for("serial", cluster="tcp://10.0.0.1:8786") == DaskExecutor("tcp://10.0.0.1:8786")
    with pytest.raises(AnalysisError, match="unknown executor"):
        executor_for("threads")
    with pytest.raises(AnalysisError, match="not a scheduler address"):
        executor_for(cluster="localhost:8786")
    with pytest.raises(AnalysisError, match="workers must be at least 1"):
        executor_for(workers=0)
    with pytest.raises(AnalysisError, match="cannot reach the Dask scheduler"):
        small_run(DaskExecutor("tcp://127.0.0.1:9", timeout=1.0))


# CLI


def write_market(folder: Path, outcomes: Outcomes = MARKET) -> Path:
    """The market as the paper's folder layout: one <provider>.jsonl, one line per instance."""
    folder.mkdir()
    for p, name in enumerate(outcomes.providers):
        lines = [
            json.dumps(
                {
                    "id": str(i),
                    "mean_cost": float(outcomes.cost[k, p]),
                    "attempts": [1] * int(outcomes.s[k, p]) + [0] * int(outcomes.n[k, p] - outcomes.s[k, p]),
                }
            )
            for k, i in enumerate(outcomes.instances)
        ]
        (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_cli_prints_a_table_and_writes_json(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    data = write_market(tmp_path / "market")
    mapping = tmp_path / "domains.csv"
    mapping.write_text("instance,domain\n" + "".join(f"django__django-{k},early\n" for k in range(10)), "utf-8")
    out = tmp_path / "robust.json"
    result = run_cli(
        "robust",
        "--data",
        str(data),
        "-p",
        "cheap,strong",
        "--fit-domain",
        "not-early",
        "--eval-domain",
        "early",
        "--domains",
        str(mapping),
        "--fit-budgets",
        "0.5,4",
        "--bootstraps",
        "6",
        "--executor",
        "serial",
        "--json",
        str(out),
    )
    assert result.code == 0, result.err
    assert "fit not-early (50)" in result.out and "evaluate early (10)" in result.out and "$0.5" in result.out
    payload = json.loads(out.read_text("utf-8"))
    assert payload["fit_budgets"] == [0.5, 4.0] and payload["bootstraps"] == 6 and payload["eval_instances"] == 10
    assert payload["providers"] == ["cheap", "strong"] and len(payload["margins"]) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fit-budgets", "1,ten"], "--fit-budgets '1,ten'"),
        (["--fit-budgets", "0,1"], "must be positive and finite"),
        (["--accounting", "lenient"], "--accounting 'lenient'"),
        (["--fit-domain", "flask"], "unknown domain 'flask'"),
        (["--cluster", "localhost"], "not a scheduler address"),
        (["--executor", "threads"], "unknown executor"),
        (["--bootstraps", "0"], "bootstraps must be at least 1"),
        (["-p", "cheap"], "exactly two providers"),
        (["--domains", "MISSING"], "cannot read the domain file"),
    ],
)
def test_cli_bad_options_give_one_clear_error(
    tmp_path: Path, run_cli: Callable[..., Any], args: list[str], message: str
) -> None:
    data = write_market(tmp_path / "market")
    args = [str(tmp_path / "nowhere.csv") if a == "MISSING" else a for a in args]
    result = run_cli("robust", "--data", str(data), "-p", "cheap,strong", "--executor", "serial", *args)
    assert result.code == 2 and message in result.err and "Traceback" not in result.err
    assert result.err.count("error:") == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("instance;domain\n", "header instance,domain"),
        ("instance,domain\na,b,c\n", "line 2: expected two non-empty fields"),
        ("instance,domain\na,x\n\na,y\n", "line 4: instance 'a' is in both 'x' and 'y'"),
        ("instance,domain\n", "no instance,domain rows"),
    ],
)
def test_bad_domain_files_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    from modelarb.cli.robust import read_domain_map

    path = tmp_path / "d.csv"
    path.write_text(text, "utf-8")
    with pytest.raises(DataError, match=message):
        read_domain_map(path)
