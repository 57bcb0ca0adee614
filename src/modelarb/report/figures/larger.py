"""Six-model market figure: every provider's price, the arbitrageur's cost and revenue, its margin vs the pair's."""

from __future__ import annotations

import numpy as np

from modelarb.experiments.larger import SHARES_AT, LargerMarket
from modelarb.report import style
from modelarb.report.section import Section


def section(market: LargerMarket) -> Section:
    q = market.cascade
    u = q.levels
    fig, (costs, shares, margin) = style.figure("The six-model SWE-bench market", 3, 4.8)
    for k, provider in enumerate(q.providers):
        dominated = provider in market.never_cheapest
        costs.plot(
            u,
            q.provider_costs[k],
            color=style.colour(provider),
            lw=1.4,
            ls=":" if dominated else "-",
            label=style.name(provider) + _note(dominated, reaches=bool(np.isfinite(q.provider_costs[k]).any())),
        )
    costs.plot(u, q.arbitrage_cost, color=style.ARBITRAGEUR, lw=2.2, label="arbitrage cost $C_q(u)$")
    style.log_axis(costs, "y", lambda c: style.money_tick(c, q.cost_unit))
    style.percent_axis(costs, "x")
    style.finish(costs, "Cost of reaching solve rate u (log scale)", style.SOLVE_RATE, style.cost_label(q.cost_unit))

    style.stacked_shares(shares, u, market.revenue.shares_with, (*q.providers, "arbitrageur"))
    style.finish(
        shares, "Revenue shares with the arbitrageur", style.SOLVE_RATE, style.SHARE, legend="lower left", legend_size=7
    )

    cascade = next((c for c in q.cascades if c.providers), None)
    kept = ", ".join(style.name(p) for p in cascade.providers) if cascade else "no provider"
    paper = q.scheme == "paper"
    pair = " + ".join(style.name(p) for p in market.pair.providers)
    margin.plot(
        u,
        q.margin,
        color=style.ARBITRAGEUR,
        lw=2,
        label=f"{'cascade over the ever-cheapest' if paper else 'exact search'} (max {100 * q.max_margin:.1f}%)",
    )
    margin.plot(
        market.pair.levels,
        market.pair.margin,
        color=style.MARKET,
        lw=1.6,
        ls="--",
        label=f"{pair} pair (max {100 * market.pair.max_margin:.1f}%)",
    )
    style.percent_axis(margin, "x")
    style.percent_axis(margin, "y")
    margin.set_ylim(bottom=0)
    style.finish(
        margin, "Arbitrageur's margin: more providers, more margin", style.SOLVE_RATE, style.MARGIN, legend="upper left"
    )
    never = " and ".join(style.name(p) for p in market.never_cheapest) or "no provider"
    if paper:
        search, same = (
            f"so the arbitrageur cascades over the others ({kept}) on the paper's 20-point grid per stage",
            "on the same grid",
        )
    else:
        search, same = "and the arbitrageur's exact search ranges over every provider", "searched exactly"
    return Section(
        "six_model_market",
        "Six-model SWE-bench market",
        (
            f"Each model's cost to reach solve rate u alone; {never} are never the cheapest, {search}.",
            f"More providers widen the margin: at most {100 * q.max_margin:.1f}%, against "
            f"{100 * market.pair.max_margin:.1f}% for the {pair} pair {same}; at "
            f"u = {SHARES_AT} the arbitrageur keeps {100 * market.shares_at[-1]:.1f}% of the revenue.",
        ),
        fig,
    )


def _note(dominated: bool, reaches: bool) -> str:
    """Legend note: a provider that is never cheapest, and one that reaches no u shown (no curve drawn)."""
    if not reaches:
        return " (never cheapest; off the chart)"
    return " (never cheapest)" if dominated else ""
