"""Robust arbitrage on the paper's SWE-bench data (needs MODELARB_DATA): the published margins.

The reference runs 200 bootstraps per domain pair (the paper: 1000) to keep the test fast;
`benchmarks/bench_robust.py` runs the full 1000.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import CliResult
from modelarb.data import Outcomes, load_market
from modelarb.robust import PAPER_FIT_BUDGETS, RobustResult, domain_mask, run

pytestmark = pytest.mark.data

BOOTSTRAPS = 200
REFERENCE = {  # the paper's mean evaluation margins (%) at fit budgets $10 / $100 / $1000
    ("all", "all"): (18.6, 22.2, 23.9),
    ("not-django", "django"): (21.0, 24.8, 28.8),
    ("django", "not-django"): (12.4, 12.0, 11.9),
}


@pytest.fixture(scope="module")
def market() -> Outcomes:
    root = os.environ.get("MODELARB_DATA")
    if not root:
        pytest.skip("MODELARB_DATA is unset: point it at the computational-arbitrage data to run this test")
    outcomes, _ = load_market(Path(root) / "swebench", ["gpt5mini", "deepseek"])
    return outcomes


@pytest.fixture(scope="module")
def results(market: Outcomes) -> dict[tuple[str, str], RobustResult]:
    return {pair: run(market, *pair, PAPER_FIT_BUDGETS, BOOTSTRAPS, seed=0) for pair in REFERENCE}


def test_django_splits_the_market_in_two_halves(market: Outcomes) -> None:
    assert domain_mask(market, "django").sum() == 223 and domain_mask(market, "not-django").sum() == 222


@pytest.mark.parametrize("pair", list(REFERENCE))
def test_mean_margins_match_the_paper_from_ten_dollars_on(
    results: dict[tuple[str, str], RobustResult], pair: tuple[str, str]
) -> None:
    result = results[pair]
    columns = [PAPER_FIT_BUDGETS.index(b) for b in (10.0, 100.0, 1000.0)]
    assert 100 * result.mean[columns] == pytest.approx(REFERENCE[pair], abs=3.0)


@pytest.mark.parametrize("pair", list(REFERENCE))
def test_a_dollar_learns_little_and_the_spread_does_not_widen(
    results: dict[tuple[str, str], RobustResult], pair: tuple[str, str]
) -> None:
    result = results[pair]
    one, ten, hundred, thousand = (PAPER_FIT_BUDGETS.index(b) for b in (1.0, 10.0, 100.0, 1000.0))
    assert result.mean[one] < 0.5 * result.mean[hundred]
    spread = result.p95 - result.p5
    assert spread[thousand] <= spread[ten] + 1e-9


def test_the_command_without_a_pair_picks_the_papers_and_its_budgets(
    paper_data: Path, run_cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    """With default options on the six-model SWE-bench market, `robust` chooses gpt5mini → deepseek (cheapest
    at the most levels), says so, and runs exactly as with the pair named: the paper's fit budgets and scales."""
    runs = []
    for extra in ([], ["-p", "gpt5mini,deepseek"]):
        out = tmp_path / f"robust{len(extra)}.json"
        args = ("robust", "--data", str(paper_data / "swebench"), "--bootstraps", "5", "--executor", "serial")
        result = run_cli(*args, *extra, "--json", str(out))
        assert result.code == 0, result.err
        runs.append((result, json.loads(out.read_text())))
    (chosen, default), (_, named) = runs
    assert "pair: gpt5mini → deepseek" in " ".join(chosen.out.split()) and default["pair_choice"]
    assert default["fit_budgets"] == list(PAPER_FIT_BUDGETS) and default["total_cap"] == 1.0
    assert default["margins"] == named["margins"] and named["pair_choice"] is None
