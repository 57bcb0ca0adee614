"""Revenue figure: shares of the pair market without and with the arbitrageur, and what providers keep."""

from __future__ import annotations

import numpy as np

from modelarb.experiments.revenue import SHARES_AT, RevenueShares
from modelarb.report import style
from modelarb.report.section import Section


def section(shares: RevenueShares) -> Section:
    r = shares.revenue
    u = r.levels
    fig, (without, with_arb, change) = style.figure("Who earns what: revenue shares in the pair market", 3, 4.6)
    style.stacked_shares(without, u, r.shares_without, r.providers)
    style.finish(without, "Without the arbitrageur", style.SOLVE_RATE, style.SHARE, legend="lower left")
    style.stacked_shares(with_arb, u, r.shares_with, (*r.providers, "arbitrageur"))
    style.finish(with_arb, "With the arbitrageur", style.SOLVE_RATE, style.SHARE, legend="lower left")
    change.plot(u, r.revenue_change, color=style.MARKET, lw=2, label="providers' revenue with / without")
    change.axhline(1.0, color="grey", lw=1, ls=":")
    style.percent_axis(change, "x")
    change.set_ylim(0, 1.05)
    style.finish(
        change,
        "Providers' total revenue change",
        style.SOLVE_RATE,
        "revenue with arbitrage / without",
        legend="lower left",
    )
    k = r.index_of(SHARES_AT)
    split = ", ".join(
        f"{style.name(p)} {100 * s:.1f}%" for p, s in zip((*r.providers, "arbitrageur"), r.shares_with[k], strict=True)
    )
    return Section(
        "revenue_shares",
        "Revenue shares in the pair market",
        (
            "Without arbitrage the cheapest provider takes every customer at the market price; with it, providers "
            "earn only what the arbitrageur spends on them and the arbitrageur keeps the profit.",
            f"At u = {u[k]:.3f}: {split}. The providers keep between {100 * np.nanmin(r.revenue_change):.0f}% and "
            f"100% of their revenue ({100 * np.nanmean(r.revenue_change):.0f}% on average over u).",
        ),
        fig,
    )
