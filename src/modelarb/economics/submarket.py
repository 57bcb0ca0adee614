"""Sub-markets read from the search of the whole market, where that is exact (one search per market).

A proven optimum of a market (its exact search was exhaustive, or a branch and bound that did not
give up) is the cheapest any cascade of its providers achieves at each level u. A
sub-market — the same instances, fewer providers, the same search settings with its orders cut to
its providers — can do no better, and its own cascades are among the market's. So wherever the
market's hull serves u with cascades (main and mixed partner) of the sub-market's providers only,
the sub-market's optimum at u is that same mix: its result is read from the market's, spend per
provider included, without a search. Market entry reads the market before entry this way when the
entrant serves no level; a rival arbitrageur is read when its providers cover the market's hull.

Otherwise the sub-market is searched on its own, as before: where the market's hull uses a
provider outside it, and always after a beam search, whose kept prefixes depend on which
providers compete for the beam's places, so that a beam over the sub-market is not the market's
beam cut to it. Results therefore equal an independent search of the sub-market. When it is
known before searching that the sub-market needs its own search (the market's is a beam search),
the two run at once (`parallel.alongside`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from modelarb.core.exact import proves
from modelarb.core.result import ArbitrageResult
from modelarb.core.search import ExactSettings
from modelarb.data.outcomes import Outcomes


def submarket_settings(exact: ExactSettings, providers: Sequence[str]) -> ExactSettings:
    """The settings of a sub-market's search: each order cut to its providers (if none is left: every order)."""
    orders = exact.orders
    if orders is None or orders == "all":
        return exact
    kept = [cut for cut in ([p for p in order if p in providers] for order in orders) if cut]
    return replace(exact, orders=kept or None)


def searched_apart(outcomes: Outcomes, exact: ExactSettings) -> bool:
    """Whether every sub-market of `outcomes` needs its own exact search, whatever the market's finds: the market's
    search (with `exact`, in this process) is a beam search, so nothing can be read from it."""
    return exact.partition is None and not proves(
        outcomes, orders=exact.orders, beam_width=exact.beam_width, max_depth=exact.max_depth
    )


def read_submarket(market: ArbitrageResult, providers: Sequence[str], exact: ExactSettings) -> ArbitrageResult | None:
    """The optimum of the sub-market of `providers` at `market`'s levels, read from `market` (searched with
    `exact`), or None where reading would not be exact (see the module's docstring)."""
    chosen = set(providers)
    cut = submarket_settings(exact, providers)
    if not market.proven or not chosen <= set(market.providers) or (cut.orders is None and exact.orders is not None):
        return None  # no proven optimum, or the sub-market's orders are not the market's cut to it
    uses = np.array([chosen.issuperset(cascade.providers) for cascade in market.cascades], dtype=bool)
    partners = market.partner_at if market.partner_at is not None else market.cascade_at
    served = np.concatenate([market.cascade_at, partners])
    if not uses[served[served >= 0]].all():
        return None
    columns = [market.providers.index(p) for p in providers]
    others = [p for p in market.providers if p not in chosen]
    return ArbitrageResult(
        providers=tuple(providers),
        cost_unit=market.cost_unit,
        scheme=market.scheme,
        method=f"{market.method}; read from the market with {', '.join(others)} too, whose proven optimum uses "
        "none of them at these levels"
        if others
        else market.method,
        levels=market.levels,
        provider_costs=market.provider_costs[columns],
        arbitrage_cost=market.arbitrage_cost,
        cascades=market.cascades,
        cascade_at=market.cascade_at,
        spend=market.spend[:, columns],
        partner_at=market.partner_at,
        partner_weight=market.partner_weight,
        proven=True,
    )
