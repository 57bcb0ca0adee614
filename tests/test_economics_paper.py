"""Market economics on the paper's released data: the reference numbers of issue 4 (paper scheme)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest

from modelarb.core.result import ArbitrageResult
from modelarb.core.search import best_solve_rate
from modelarb.data import Outcomes, load_market
from modelarb.economics import (
    cascade_cost,
    compete,
    distillation,
    market_arbitrage,
    market_entry,
    revenue,
    segmentation,
    undercut,
)

pytestmark = pytest.mark.data
POINTS = 0.015  # ±1.5 points
PAIR = ["gpt5mini", "deepseek"]
SIX = ["minicoder4b", "qwen3-coder-30b", "qwen3-coder-480b", "gpt5mini", "deepseek", "sonnet"]
FOUR = ("minicoder4b", "qwen3-coder-30b", "gpt5mini", "deepseek")
KIMINA = ["kimina-1.7b", "kimina-8b", "kimina-72b"]


@cache
def _market(folder: Path, providers: tuple[str, ...]) -> Outcomes:
    return load_market(folder, list(providers))[0]


@cache
def _pair(root: Path) -> ArbitrageResult:
    outcomes = _market(root / "swebench", tuple(PAIR))
    return market_arbitrage(outcomes, np.linspace(0.68, best_solve_rate(outcomes, "paper"), 1000))


@cache
def _six(root: Path) -> tuple[Outcomes, np.ndarray, ArbitrageResult]:
    outcomes = _market(root / "swebench", tuple(SIX))
    levels = np.linspace(0.40, best_solve_rate(outcomes, "paper"), 100)
    return outcomes, levels, market_arbitrage(outcomes, levels)


# --- the pair market ---


def test_pair_revenue_shares_at_075(paper_data: Path) -> None:
    earned = revenue(_pair(paper_data))
    k = earned.index_of(0.75)
    assert earned.shares_without[k] == pytest.approx([0.0, 1.0])
    gpt, deepseek, arbitrageur = earned.shares_with[k]
    assert gpt == pytest.approx(0.180, abs=POINTS)
    assert deepseek == pytest.approx(0.485, abs=POINTS)
    assert arbitrageur == pytest.approx(0.335, abs=POINTS)


def test_pair_revenue_change(paper_data: Path) -> None:
    earned = revenue(_pair(paper_data))
    assert earned.revenue_change.min() == pytest.approx(0.589, abs=POINTS)
    assert earned.levels[earned.revenue_change.argmin()] == pytest.approx(earned.levels[-1])
    assert earned.revenue_change.mean() == pytest.approx(0.80, abs=POINTS)


def test_pair_undercutting_seven_rounds(paper_data: Path) -> None:
    result = _pair(paper_data)
    race = undercut(result.market_price, result.arbitrage_cost, 0.93, 7)
    assert race.price_ratio[-1].min() == pytest.approx(0.60, abs=POINTS)
    assert race.price_ratio[-1].mean() == pytest.approx(0.80, abs=POINTS)
    assert np.all(race.prices[-1] >= np.minimum(result.arbitrage_cost, result.market_price) * (1 - 1e-12))


# --- six SWE-bench models ---


def test_six_model_market_segmentation_and_margin(paper_data: Path) -> None:
    outcomes, levels, result = _six(paper_data)
    assert set(segmentation(result).never_cheapest) == {"qwen3-coder-480b", "sonnet"}
    assert {c.providers for c in result.cascades} == {FOUR}
    assert result.max_margin == pytest.approx(0.563, abs=POINTS)
    pair = market_arbitrage(outcomes, levels, cascade=PAIR, same_grid=True)
    assert pair.max_margin == pytest.approx(0.458, abs=POINTS)
    assert result.max_margin > pair.max_margin + 0.05


def test_six_model_shares_at_075(paper_data: Path) -> None:
    earned = revenue(_six(paper_data)[2])
    shares = dict(zip((*earned.providers, "arbitrageur"), earned.shares_with[earned.index_of(0.75)], strict=True))
    assert shares["arbitrageur"] == pytest.approx(0.484, abs=POINTS)
    assert shares["qwen3-coder-30b"] == pytest.approx(0.105, abs=POINTS)
    assert shares["gpt5mini"] == pytest.approx(0.113, abs=POINTS)
    assert shares["qwen3-coder-480b"] == shares["sonnet"] == 0.0
    # the split between the first and last stage is ill-conditioned (see the xfail below); their sum is not
    assert shares["minicoder4b"] + shares["deepseek"] == pytest.approx(0.068 + 0.230, abs=POINTS)


@pytest.mark.xfail(
    strict=True,
    reason="near-tied cascades: ours at u≈0.7514 is (0.0127, 0.0546, 0.0785, 0.234) giving mini-coder 3.7%, "
    "DeepSeek 25.6%; the paper's shares match (0.0264, 0.0546, 0.0785, ·), 0.2 points of margin dearer on our grid",
)
def test_six_model_first_and_last_stage_shares_at_075(paper_data: Path) -> None:
    earned = revenue(_six(paper_data)[2])
    shares = dict(zip((*earned.providers, "arbitrageur"), earned.shares_with[earned.index_of(0.75)], strict=True))
    assert shares["minicoder4b"] == pytest.approx(0.068, abs=POINTS)
    assert shares["deepseek"] == pytest.approx(0.230, abs=POINTS)


def test_a_rival_with_only_the_pair_leaves_the_four_provider_arbitrageur_a_margin(paper_data: Path) -> None:
    outcomes, levels, result = _six(paper_data)
    rival = cascade_cost(outcomes, levels, PAIR)
    race = compete([result.arbitrage_cost, rival], result.market_price, ["four", "pair"], 0.93)
    sells = race.winner >= 0
    assert np.all(race.winner[sells] == 0)
    assert race.settled_margin.max() > 0.1
    assert np.all(race.settled_margin <= result.margin + 1e-12)


# --- market entry ---


def test_minicoder_entry_cuts_qwen30b_share_by_over_half(paper_data: Path) -> None:
    outcomes = _market(paper_data / "swebench", ("qwen3-coder-30b", "gpt5mini", "minicoder4b"))
    incumbents = ["qwen3-coder-30b", "gpt5mini"]
    levels = np.linspace(0.40, best_solve_rate(outcomes.select(incumbents), "paper"), 100)
    entry = market_entry(outcomes, incumbents, "minicoder4b", levels)
    assert entry.average_with_after[0] < 0.5 * entry.average_with_before[0]
    assert entry.average_without_after[0] < 0.5 * entry.average_without_before[0]
    assert entry.average_with_after[2] > 0.1


# --- distillation ---


def test_swebench_distillation_margins(paper_data: Path) -> None:
    students = ["1.7b-84", "1.7b-281", "1.7b-845", "1.7b-2816", "1.7b-1e"]
    outcomes = _market(paper_data / "swebench" / "distill", (*students, "qwen3-coder-480b"))
    result = distillation(outcomes, "qwen3-coder-480b", students, [70e6, 2e8, 6e8, 1.8e9, 5.4e9])
    assert result.max_margin == pytest.approx([0.036, 0.058, 0.115, 0.231, 0.276], abs=POINTS)
    assert result.fit.slope > 0 and result.fit.r_squared > 0.8
    assert result.cost_unit == "USD"
    assert np.all(result.teacher_revenue_ratio < 1.0)


def test_lean_distillation_margins(paper_data: Path) -> None:
    students = ["distill-1.7b-3k", "distill-1.7b-8k", "distill-1.7b-24k", "distill-1.7b-72k", "distill-1.7b-192k"]
    outcomes = _market(paper_data / "lean", (*students, "kimina-72b"))
    result = distillation(outcomes, "kimina-72b", students, [3e3, 8e3, 2.4e4, 7.2e4, 1.92e5])
    assert result.max_margin == pytest.approx([0.042, 0.078, 0.125, 0.190, 0.203], abs=POINTS)
    assert result.cost_unit == "compute"
    np.testing.assert_allclose(result.levels, np.tile(np.linspace(0.7, 0.9, 100), (5, 1)))


# --- theorem proving ---


def test_lean_market(paper_data: Path) -> None:
    outcomes = _market(paper_data / "lean", tuple(KIMINA))
    result = market_arbitrage(outcomes, np.linspace(0.6, 0.9, 100))
    earned = revenue(result)
    assert result.cost_unit == earned.cost_unit == "compute"
    assert result.max_margin == pytest.approx(0.556, abs=POINTS)
    assert result.max_margin_at == pytest.approx(0.85, abs=0.02)
    assert earned.revenue_change.min() == pytest.approx(0.44, abs=POINTS)
