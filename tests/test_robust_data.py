"""Robust arbitrage on the paper's SWE-bench data (needs MODELARB_DATA): the published margins.

The reference runs 200 bootstraps per domain pair (the paper: 1000) to keep the test fast;
`benchmarks/bench_robust.py` runs the full 1000.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
