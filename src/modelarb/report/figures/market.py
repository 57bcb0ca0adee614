"""Figures of a report for any market: cost curves and margins, revenue shares, entry."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from modelarb.report import style
from modelarb.report.amounts import unit_name
from modelarb.report.market import MarketAnalysis

NAMED_COLOURS = 9  # up to this many providers keep the report's provider colours; more are spread over a colormap
LOG_RATIO = 30.0  # a cost axis spanning more than this factor is drawn on a log scale
MARGIN_FLOOR = -1.0  # the margin axis ends at -100% (x 1.1): lower cross-validated means are marked at its edge


def colours(names: Sequence[str]) -> dict[str, str]:
    """A distinct colour per provider: the report's own for a few, a colormap's for many; red for the arbitrageur."""
    providers = [n for n in names if n != "arbitrageur"]
    if len(providers) <= NAMED_COLOURS:
        chosen = {p: style.colour(p) for p in providers}
    else:
        spread = colormaps["turbo"](np.linspace(0.05, 0.95, len(providers)))
        chosen = {p: to_hex(rgba) for p, rgba in zip(providers, spread, strict=True)}
    return {**chosen, "arbitrageur": style.ARBITRAGEUR}


def cost_label(unit: str) -> str:
    return f"expected cost per instance ({unit_name(unit)})"


def _cost_axis(ax: Axes, values: np.ndarray) -> None:
    """A log scale when costs span more than LOG_RATIO, else a linear one from zero."""
    finite = values[np.isfinite(values) & (values > 0)]
    if finite.size and finite.max() / finite.min() > LOG_RATIO:
        ax.set_yscale("log")
    elif finite.size:
        ax.set_ylim(0, 1.05 * finite.max())


def curves_figure(analysis: MarketAnalysis) -> Figure:
    """Left: each provider's cost C_p(u), the market price and the arbitrage cost. Right: the margin in and out of
    sample (cross-validated means with 95 % intervals)."""
    r = analysis.result
    u = r.levels
    fig, (costs, margins) = style.figure("Cost of a verified solution, and the arbitrageur's margin", 2, 6.4, 5.0)
    tone = colours(r.providers)
    idle = set(analysis.segmentation.never_cheapest)
    many = len(r.providers) > NAMED_COLOURS
    grouped = False
    for k, provider in enumerate(r.providers):
        curve = np.where(np.isfinite(r.provider_costs[k]), r.provider_costs[k], np.nan)
        if many and provider in idle:
            label = None if grouped else "providers never cheapest"
            costs.plot(u, curve, color="#bbbbbb", lw=0.8, label=label)
            grouped = True
        else:
            costs.plot(u, curve, color=tone[provider], lw=1.4, label=f"{style.name(provider)} alone")
    price = np.where(np.isfinite(r.market_price), r.market_price, np.nan)
    spend = np.where(np.isfinite(r.arbitrage_cost), r.arbitrage_cost, np.nan)
    costs.plot(u, price, color=style.MARKET, ls="--", lw=1.6, label="market price $C_P(u)$")
    costs.plot(u, spend, color=style.ARBITRAGEUR, lw=2.2, label="arbitrage cost $C_A(u)$")
    costs.fill_between(u, spend, price, where=r.profit > 0, color=style.ARBITRAGEUR, alpha=0.15, label="profit")
    _cost_axis(costs, np.concatenate([r.provider_costs.ravel(), r.arbitrage_cost]))
    style.percent_axis(costs, "x")
    costs.set_xlim(u[0], u[-1])
    style.finish(
        costs,
        "Cost of reaching solve rate u",
        style.SOLVE_RATE,
        cost_label(r.cost_unit),
        legend="upper left",
        legend_size=7 if many else 8,
    )

    margins.plot(u, r.margin, color=style.ARBITRAGEUR, lw=2, label="in sample (tuned on every instance)")
    margins.axhline(0, color="grey", lw=1, ls=":")
    bottom, top = 0.0, max(0.05, 1.15 * r.max_margin)
    if analysis.checks:
        levels = np.array([c.level for c in analysis.checks])
        means = np.array([c.cross_validated.mean for c in analysis.checks])
        lows = np.array([c.cross_validated.interval[0] for c in analysis.checks])
        highs = np.array([c.cross_validated.interval[1] for c in analysis.checks])
        bottom = max(MARGIN_FLOOR, min(0.0, float(np.nanmin(np.append(lows, means))))) * 1.1
        top = max(top, 1.1 * float(np.nanmax(highs)))
        shown = np.clip(means, bottom, None)
        margins.errorbar(
            levels,
            shown,
            yerr=[shown - np.clip(lows, bottom, shown), np.clip(highs, shown, None) - shown],
            fmt="o",
            color=style.MARKET,
            ms=5,
            capsize=3,
            label=f"cross-validated over {analysis.folds} folds, 95% interval",
        )
        off = means < bottom
        if off.any():
            margins.plot(levels[off], np.full(off.sum(), bottom), "v", color=style.MARKET, ms=9, label="mean off chart")
    style.margin_panel(margins, r)
    margins.set_ylim(bottom, top)
    return fig


def shares_figure(analysis: MarketAnalysis) -> Figure:
    """Left: revenue shares with the arbitrageur, stacked over u. Right: what the providers keep of the market."""
    e = analysis.revenue
    u = e.levels
    fig, (shares, change) = style.figure("Who earns what: revenue shares", 2, 6.4, 5.0)
    names = (*e.providers, "arbitrageur")
    tone = colours(names)
    values = np.nan_to_num(e.shares_with)
    kept = [k for k in range(values.shape[1]) if values[:, k].sum() > 0]
    shares.stackplot(
        u,
        values[:, kept].T,
        colors=[tone[names[k]] for k in kept],
        labels=[style.name(names[k]) for k in kept],
        alpha=0.85,
    )
    shares.set_ylim(0, 1)
    shares.set_xlim(u[0], u[-1])
    style.percent_axis(shares, "x")
    style.percent_axis(shares, "y")
    style.finish(
        shares, "Shares with the arbitrageur", style.SOLVE_RATE, style.SHARE, legend="lower left", legend_size=7
    )
    change.plot(u, e.revenue_change, color=style.MARKET, lw=2, label="providers' revenue with / without")
    change.axhline(1.0, color="grey", lw=1, ls=":")
    style.percent_axis(change, "x")
    style.percent_axis(change, "y")
    change.set_ylim(0, 1.05)
    change.set_xlim(u[0], u[-1])
    style.finish(
        change, "What the providers keep", style.SOLVE_RATE, "revenue with arbitrage / without", legend="lower left"
    )
    return fig


def entry_figure(analysis: MarketAnalysis) -> Figure:
    """Average revenue share over u of each participant before and after entry, without and with the arbitrageur."""
    e = analysis.entry
    assert e is not None, "entry_figure needs an analysis with an entrant"
    names = (*e.providers, "arbitrageur")
    tone = colours(names)
    fig, (without, with_arb) = style.figure(f"Entry of {style.name(e.entrant)}", 2, 6.4, 5.0)
    for ax, before, after, columns, title in (
        (without, e.average_without_before, e.average_without_after, e.providers, "Without the arbitrageur"),
        (with_arb, e.average_with_before, e.average_with_after, names, "With the arbitrageur"),
    ):
        shown = [k for k in range(len(columns)) if np.nan_to_num(before[k]) > 0 or np.nan_to_num(after[k]) > 0]
        x = np.arange(len(shown))
        ax.bar(x - 0.2, np.nan_to_num(before[shown]), 0.4, color="#bbbbbb", label="before entry")
        ax.bar(x + 0.2, np.nan_to_num(after[shown]), 0.4, color=[tone[columns[k]] for k in shown], label="after entry")
        ax.set_xticks(x, [style.name(columns[k]) for k in shown], fontsize=8, rotation=30 if len(shown) > 4 else 0)
        style.percent_axis(ax, "y")
        style.finish(ax, title, "market participant", "average share of revenue over u (%)", legend="upper left")
    return fig
