"""The arbitrageur of a market of any size (METHOD §5.6–5.7).

In the paper's scheme a pair market keeps the paper's pair rule (one cap vector chosen
by mean margin); larger markets take the cheapest cascade at each u over the per-stage
cap grid. Providers that are cheapest at no level never set the price, so by default the
cascade leaves them out, as the paper does for its six-model market.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from modelarb.core.paper import Selection, grid_search, provider_cost_curves
from modelarb.core.result import ArbitrageResult
from modelarb.core.scales import settings_for
from modelarb.core.search import (
    MAX_GRID_STAGES,
    ExactSettings,
    Scheme,
    best_solve_rate,
    check_levels,
    check_scheme,
    search,
)
from modelarb.data.outcomes import Outcomes
from modelarb.economics.segmentation import segment
from modelarb.economics.submarket import read_submarket, searched_apart, submarket_settings
from modelarb.errors import AnalysisError
from modelarb.parallel import alongside

Array = NDArray[np.float64]


def market_arbitrage(
    outcomes: Outcomes,
    levels: Array,
    scheme: Scheme = "paper",
    cascade: Sequence[str] | None = None,
    same_grid: bool = False,
    exact: ExactSettings | None = None,
) -> ArbitrageResult:
    """The cheapest cascade at each level, priced against every provider of `outcomes`.

    `cascade`: the providers the arbitrageur buys from, in order (default: those cheapest at
    some level, in market order). `same_grid`: use the per-stage grid and the cheapest cascade
    at each u even for a pair, so that markets of different sizes compare on one grid.
    The exact scheme searches the whole market and takes no `cascade`; `exact` says how.
    """
    check_scheme(scheme)
    exact = exact or ExactSettings()
    if scheme == "paper" and exact.given():
        raise AnalysisError("orders, beam width and depth apply to the exact scheme; use --scheme exact")
    levels = check_levels(levels, best_solve_rate(outcomes, scheme))
    if scheme == "exact":
        if cascade is not None:
            raise AnalysisError("the exact scheme searches every provider of the market; choose them with --providers")
        return search(
            outcomes,
            levels,
            "exact",
            orders=exact.orders,
            beam_width=exact.beam_width,
            max_depth=exact.max_depth,
            partition=exact.partition,
        )
    settings = settings_for(outcomes)
    if cascade is None:
        if outcomes.n_providers == 2 and not same_grid:
            return search(outcomes, levels, "paper")
        costs = provider_cost_curves(outcomes, levels, settings.market_grid)
        idle = segment(levels, costs, outcomes.providers).never_cheapest
        cascade = [p for p in outcomes.providers if p not in idle]
    order = tuple(cascade)
    if len(order) > MAX_GRID_STAGES:
        raise AnalysisError(
            f"the paper's cap grid over {len(order)} stages is too large ({len(order)} > {MAX_GRID_STAGES}); "
            "name fewer providers with --providers or use --scheme exact"
        )
    pair_rule = len(order) == 2 and not same_grid
    caps = settings.pair_caps() if pair_rule else settings.stage_caps(len(order))
    select: Selection = "mean_margin" if pair_rule else "per_level"
    return grid_search(outcomes, levels, caps, select, settings.grid, order=order, market_grid=settings.market_grid)


def cascade_cost(
    outcomes: Outcomes,
    levels: Array,
    providers: Sequence[str],
    scheme: Scheme = "paper",
    exact: ExactSettings | None = None,
    market: ArbitrageResult | None = None,
) -> Array:
    """C_q(u) of an arbitrageur restricted to `providers` (cheapest cascade at each u; ∞ where it cannot reach u).

    `market`: the whole market's result on these levels, searched with `exact`; the exact scheme reads
    the restricted arbitrageur from it where that is exact (`submarket.read_submarket`), else searches.
    """
    check_scheme(scheme)
    exact = exact or ExactSettings()
    if scheme == "paper":
        return market_arbitrage(outcomes, levels, "paper", cascade=providers, same_grid=True).arbitrage_cost
    if market is not None and not np.array_equal(market.levels, levels):
        raise AnalysisError("the market's result must be on the levels the rival is priced at")
    sub = outcomes.select(list(providers))
    reach = levels <= best_solve_rate(sub, "exact")
    cost = np.full(len(levels), np.inf)
    read = None if market is None else read_submarket(market, providers, exact)
    if read is not None:
        cost[reach] = read.arbitrage_cost[reach]
    elif reach.any():
        cut = submarket_settings(exact, providers)
        cost[reach] = search(
            sub,
            levels[reach],
            "exact",
            orders=cut.orders,
            beam_width=cut.beam_width,
            max_depth=cut.max_depth,
            partition=cut.partition,
        ).arbitrage_cost
    return cost


def market_and_rival(
    outcomes: Outcomes,
    levels: Array,
    providers: Sequence[str],
    scheme: Scheme = "paper",
    exact: ExactSettings | None = None,
) -> tuple[ArbitrageResult, Array]:
    """The market's arbitrageur (`market_arbitrage`) and the cost of a rival restricted to `providers`
    (`cascade_cost`), the rival read from the market's search where that is exact, else searched: at the same
    time as the market when the market's search is a beam search (`parallel.alongside`)."""
    exact = exact or ExactSettings()
    if scheme == "exact" and searched_apart(outcomes, exact):
        return alongside(
            lambda: market_arbitrage(outcomes, levels, scheme, exact=exact),
            lambda: cascade_cost(outcomes, levels, providers, scheme, exact),
        )
    market = market_arbitrage(outcomes, levels, scheme, exact=exact)
    return market, cascade_cost(outcomes, market.levels, providers, scheme, exact, market=market)
