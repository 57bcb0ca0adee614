"""Two independent jobs at once (`parallel.alongside`): the same answers as one after the other.

`market entry` and `market compete --rival-providers` search two markets; when the market's search is
a beam search nothing can be read from it, so both searches run at once, the second in a forked child.
"""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from modelarb.core.search import ExactSettings, best_solve_rate
from modelarb.economics import cascade_cost, market_and_rival, market_arbitrage, market_entry, revenue
from modelarb.economics.submarket import searched_apart
from modelarb.errors import AnalysisError
from modelarb.parallel import alongside
from test_search_scale import leaderboard

FORKS = (os.cpu_count() or 1) >= 2 and hasattr(os, "fork")
TIGHT = {"rtol": 1e-12, "atol": 1e-15}


@pytest.mark.skipif(not FORKS, reason="needs a second core and fork")
def test_the_second_job_runs_in_a_child_process() -> None:
    here, there = alongside(lambda: os.getpid(), lambda: os.getpid())
    assert here == os.getpid() != there


def test_an_error_in_the_second_job_is_raised_here() -> None:
    def fails() -> None:
        raise AnalysisError("the rival's market is empty")

    with pytest.raises(AnalysisError, match="rival's market is empty"):
        alongside(lambda: 1, fails)


def test_a_child_that_dies_has_its_job_done_here() -> None:
    parent = os.getpid()

    def dies_in_a_child() -> int:
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return 7

    assert alongside(lambda: 3, dies_in_a_child) == (3, 7)


def test_beam_searched_entry_and_rival_equal_searches_one_after_the_other() -> None:
    market = leaderboard(7, 60, seed=4)
    names = list(market.providers)
    beam = ExactSettings(beam_width=8)
    assert searched_apart(market, beam) and not searched_apart(market, ExactSettings(max_depth=2))
    incumbents = names[:-1]
    levels = np.linspace(0.2, best_solve_rate(market.select(incumbents), "exact"), 15)
    entry = market_entry(market, incumbents, names[-1], levels, "exact", beam)
    for reused, alone in (
        (entry.before, market_arbitrage(market.select(incumbents), levels, "exact", same_grid=True, exact=beam)),
        (entry.after, market_arbitrage(market, levels, "exact", same_grid=True, exact=beam)),
    ):
        for name in ("market_price", "without", "with_arbitrage", "profit"):
            np.testing.assert_allclose(getattr(reused, name), getattr(revenue(alone), name), **TIGHT)
    levels = np.linspace(0.2, best_solve_rate(market, "exact"), 15)
    result, rival = market_and_rival(market, levels, names[::2], "exact", beam)
    alone = market_arbitrage(market, levels, "exact", exact=beam)
    np.testing.assert_allclose(result.arbitrage_cost, alone.arbitrage_cost, **TIGHT)
    np.testing.assert_allclose(rival, cascade_cost(market, levels, names[::2], "exact", beam), **TIGHT)
