"""Pair market figure: each provider's price of performance, the arbitrageur's buy and sell prices, the margin."""

from __future__ import annotations

import numpy as np

from modelarb.experiments.pair import REPORTED_LEVELS, PairMarket
from modelarb.report import style
from modelarb.report.section import Section


def section(pair: PairMarket) -> Section:
    r = pair.result
    u = r.levels
    fig, (costs, margin) = style.figure("Arbitrage between GPT-5 mini and DeepSeek v3.2 (SWE-bench Verified)", 2)
    for k, provider in enumerate(r.providers):
        costs.plot(u, r.provider_costs[k], color=style.colour(provider), lw=1.6, label=f"{style.name(provider)} alone")
    costs.plot(u, r.market_price, color=style.MARKET, ls="--", lw=1.4, label="sell price = market price $C_P(u)$")
    costs.plot(u, r.arbitrage_cost, color=style.ARBITRAGEUR, lw=2.2, label="buy price = arbitrage cost $C_q(u)$")
    costs.fill_between(
        u,
        r.arbitrage_cost,
        r.market_price,
        where=r.profit > 0,
        color=style.ARBITRAGEUR,
        alpha=0.15,
        label="profit per issue",
    )
    if np.isfinite(pair.crossover):
        costs.axvline(pair.crossover, color="grey", ls=":", lw=1)
        costs.annotate(
            f"cheapest provider\nchanges at u = {pair.crossover:.3f}",
            (pair.crossover, 0.62),
            xycoords=("data", "axes fraction"),
            xytext=(6, 0),
            textcoords="offset points",
            va="top",
            fontsize=8,
            color="dimgrey",
        )
    style.percent_axis(costs, "x")
    style.finish(
        costs, "Cost of reaching solve rate u", style.SOLVE_RATE, style.cost_label(r.cost_unit), legend="upper left"
    )

    margin.plot(u, r.margin, color=style.ARBITRAGEUR, lw=2, label="margin $(C_P - C_q) / C_P$")
    marks = np.array(REPORTED_LEVELS)
    margin.plot(marks, [pair.margin_at(x) for x in marks], "o", color="black", ms=5, label="u = 0.70, 0.72, 0.74")
    style.margin_panel(margin, r)
    caps = " → ".join(f"{style.name(p)} ≤ ${c:.3f}" for p, c in zip(r.providers, pair.caps, strict=True))
    return Section(
        "pair_market",
        "Pair market: GPT-5 mini then DeepSeek v3.2",
        (
            "Each provider's cheapest expected cost per issue to reach solve rate u alone, against the arbitrageur's "
            f"cost with the cascade {caps} (its buy price) and the market price it sells at.",
            f"The arbitrageur undercuts the market from u = {u[0]:.2f} up to the best solve rate; its margin peaks at "
            f"{100 * r.max_margin:.1f}% at u = {r.max_margin_at:.3f}, where the market charges "
            f"${r.market_price[r.margin.argmax()]:.3f} and it pays ${r.arbitrage_cost[r.margin.argmax()]:.3f}.",
        ),
        fig,
    )
