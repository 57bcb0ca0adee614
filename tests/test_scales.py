"""Scales from the data: the paper scheme's grids, robust's cut-off and caps on markets unlike the paper's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from conftest import CliResult
from modelarb.cli.levels import default_levels
from modelarb.core import paper
from modelarb.core.scales import MarketScale, cutoff_notes, is_paper_data, settings_for
from modelarb.core.search import best_solve_rate, search
from modelarb.data.market import load_market
from modelarb.robust import RobustScheme, run
from synthetic_markets import attempts_market, dear_market, leaderboard
from test_cli_arbitrage import flat

Run = Callable[..., CliResult]


def test_paper_data_keeps_the_paper_grids(paper_data: Path) -> None:
    outcomes, _ = load_market(paper_data / "swebench", ["gpt5mini", "deepseek"])
    assert is_paper_data(outcomes) and is_paper_data(outcomes.select(instances=lambda i: "django" in i))
    assert repr(settings_for(outcomes)) == repr(paper.PaperSettings.for_unit("USD"))
    assert repr(RobustScheme.for_market(outcomes)) == repr(RobustScheme())
    lean, _ = load_market(paper_data / "lean")
    assert repr(settings_for(lean)) == repr(paper.PaperSettings.for_unit(lean.unit))


def test_paper_data_says_where_its_grid_cuts_off(paper_data: Path, run_cli: Run) -> None:
    result = run_cli("arbitrage", "--data", str(paper_data / "swebench"), "--providers", "gpt5mini,deepseek,sonnet",
                     "--scheme", "paper", "--levels", "0.6:best:20")  # fmt: skip
    assert result.code == 0, result.err
    assert "the paper's grid" in flat(result.err) and "cut off: sonnet reaches 0.164" in flat(result.err)


def test_market_priced_in_attempts(tmp_path: Path) -> None:
    outcomes, _ = load_market(attempts_market(tmp_path / "lean-like"))
    assert outcomes.unit == "attempts" and not is_paper_data(outcomes)
    settings = settings_for(outcomes)
    assert settings.total == MarketScale.of(outcomes).saturation <= 64
    assert settings.grid.low == 0.5
    best = best_solve_rate(outcomes, "exact")
    assert best_solve_rate(outcomes, "paper") == pytest.approx(best)
    levels = np.linspace(0.5, best, 50)
    exact, grid = search(outcomes, levels, "exact"), search(outcomes, levels, "paper")
    # the paper scheme now prices in attempts: within 15 % of the exact market price (was 1643 vs 1 on the Lean grid)
    np.testing.assert_allclose(grid.market_price, exact.market_price, rtol=0.15)
    assert grid.max_margin <= exact.max_margin + 0.02
    assert cutoff_notes(outcomes, settings.market_grid.high) == []


def test_robust_on_a_market_priced_in_attempts(tmp_path: Path) -> None:
    outcomes, _ = load_market(attempts_market(tmp_path / "lean-like"))
    scheme = RobustScheme.for_market(outcomes)
    assert scheme.censor_at == scheme.total_cap / 2 and scheme.total_cap <= 64
    budgets = scheme.fit_budgets(outcomes, "paper")
    assert len(budgets) == 7 and budgets[0] < budgets[-1]
    result = run(outcomes, fit_budgets=budgets, bootstraps=40, executor="serial")
    exact = search(outcomes, np.linspace(0.7, best_solve_rate(outcomes, "exact"), 20), "exact")
    assert 0.05 < result.mean[-1] <= exact.max_margin + 0.02  # was 0.0 % at every budget with the $0.5 cut-off


def test_dear_attempts_are_not_cut_off(tmp_path: Path) -> None:
    outcomes, _ = load_market(dear_market(tmp_path / "agentic"))
    agent = outcomes.select(["agent"])
    full = float((agent.s > 0).mean())
    assert best_solve_rate(agent, "paper") == pytest.approx(full)
    assert settings_for(outcomes).grid.high >= 10
    # the paper's dollar grid would have cut the agent off: what the derived grid fixes
    assert paper.best_solve_rate(agent, paper.PaperSettings.for_unit("USD").market_grid) < 0.5 * full
    assert cutoff_notes(outcomes, 1.0) and not cutoff_notes(outcomes, settings_for(outcomes).market_grid.high)


def test_one_attempt_leaderboard_of_30_providers(tmp_path: Path, run_cli: Run) -> None:
    folder = leaderboard(tmp_path / "board")
    outcomes, _ = load_market(folder)
    assert outcomes.n_providers == 30 and int(outcomes.n.max()) == 1
    assert outcomes.cost.min() >= 0.001 and outcomes.cost.max() <= 5
    levels = default_levels(outcomes, best_solve_rate(outcomes, "exact"))
    assert 0 < levels[0] < levels[-1]
    described = run_cli("describe", "--data", str(folder))
    assert described.code == 0 and "model-29" in described.out
    result = run_cli("arbitrage", "--data", str(folder), "--levels", f"{levels[0]:.3f}:best:50")
    assert result.code == 0, result.err
    assert "maximum margin" in flat(result.out)
