"""Lean market figure: the Kimina provers' prices in compute units, the arbitrageur's cost and margin."""

from __future__ import annotations

import numpy as np

from modelarb.experiments.lean import LeanMarket
from modelarb.report import style
from modelarb.report.section import Section


def section(market: LeanMarket) -> Section:
    r = market.result
    u = r.levels
    fig, (costs, margin, shares) = style.figure("Theorem proving: Kimina provers on miniF2F (Lean 4)", 3, 4.8)
    for k, provider in enumerate(r.providers):
        costs.plot(u, r.provider_costs[k], color=style.colour(provider), lw=1.6, label=f"{style.name(provider)} alone")
    costs.plot(u, r.arbitrage_cost, color=style.ARBITRAGEUR, lw=2.2, label="arbitrage cost $C_q(u)$")
    style.log_axis(costs, "y", lambda c: style.money_tick(c, r.cost_unit))
    style.percent_axis(costs, "x")
    style.finish(
        costs, "Cost of reaching solve rate u (log scale)", style.SOLVE_RATE, style.cost_label(r.cost_unit, "problem")
    )
    margin.plot(u, r.margin, color=style.ARBITRAGEUR, lw=2, label="arbitrageur's margin")
    style.margin_panel(margin, r)
    style.stacked_shares(shares, u, market.revenue.shares_with, (*r.providers, "arbitrageur"))
    style.finish(shares, "Revenue shares with the arbitrageur", style.SOLVE_RATE, style.SHARE, legend="lower left")
    kept = float(np.nanmin(market.revenue.revenue_change))
    return Section(
        "lean_market",
        "Theorem proving: the Lean market",
        (
            "Kimina provers of 1.7B, 8B and 72B parameters on miniF2F, priced in compute units per problem, and the "
            "cheapest cascade over them at each solve rate.",
            f"Arbitrage works outside dollar markets too: the margin reaches {100 * r.max_margin:.1f}% at "
            f"u = {r.max_margin_at:.3f}, and the provers keep as little as {100 * kept:.0f}% of their revenue.",
        ),
        fig,
    )
