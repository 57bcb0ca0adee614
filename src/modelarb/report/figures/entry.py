"""Market entry figure: the incumbent's revenue share across u, and everyone's average share, before and after."""

from __future__ import annotations

import numpy as np

from modelarb.experiments.entry import MarketEntry
from modelarb.report import style
from modelarb.report.section import Section


def section(result: MarketEntry) -> Section:
    e = result.entry
    u = e.levels
    incumbent = e.incumbents[0]
    k = e.providers.index(incumbent)
    fig, (share, bars) = style.figure(
        f"Market entry: {style.name(e.entrant)} joins " + " and ".join(style.name(p) for p in e.incumbents), 2
    )
    tone = style.colour(incumbent)
    share.plot(u, e.shares_without_before[:, k], color=tone, lw=1.6, ls="--", label="before entry, no arbitrageur")
    share.plot(u, e.shares_without_after[:, k], color=tone, lw=1.6, ls=":", label="after entry, no arbitrageur")
    share.plot(u, e.shares_with_before[:, k], color=tone, lw=2.2, alpha=0.45, label="before entry, with arbitrageur")
    share.plot(u, e.shares_with_after[:, k], color=tone, lw=2.2, label="after entry, with arbitrageur")
    style.percent_axis(share, "x")
    style.percent_axis(share, "y")
    share.set_ylim(0, 1.05)
    style.finish(share, f"{style.name(incumbent)}'s revenue share", style.SOLVE_RATE, style.SHARE, legend="upper right")

    names = (*e.providers, "arbitrageur")
    x = np.arange(len(names))
    bars.bar(x - 0.2, e.average_with_before, 0.4, color="#bbbbbb", label="before entry")
    bars.bar(
        x + 0.2,
        e.average_with_after,
        0.4,
        color=[style.ARBITRAGEUR if n == "arbitrageur" else style.colour(n) for n in names],
        label="after entry",
    )
    bars.set_xticks(x, [style.name(n) for n in names], fontsize=9)
    style.percent_axis(bars, "y")
    style.finish(
        bars,
        "Average revenue share over u, with the arbitrageur",
        "market participant",
        "average share of revenue (%)",
        legend="upper left",
    )
    kept_with, kept_without = result.kept(incumbent, True), result.kept(incumbent, False)
    return Section(
        "market_entry",
        f"Market entry of {style.name(e.entrant)}",
        (
            f"{style.name(e.entrant)}, distilled from {style.name(incumbent)}, joins the market of "
            + " and ".join(style.name(p) for p in e.incumbents)
            + f"; revenue shares over u ∈ [{u[0]:.2f}, {u[-1]:.3f}] before and after.",
            f"{style.name(incumbent)} keeps {100 * kept_without:.0f}% of its average share without an arbitrageur "
            f"and {100 * kept_with:.0f}% with one: the student takes much of its teacher's market.",
        ),
        fig,
    )
