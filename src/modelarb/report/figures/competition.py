"""Price competition figure: the consumer price and the arbitrageurs' margin after each undercutting round."""

from __future__ import annotations

from matplotlib import colormaps

from modelarb.experiments.competition import PriceCompetition
from modelarb.report import style
from modelarb.report.section import Section


def section(competition: PriceCompetition) -> Section:
    race, u = competition.race, competition.levels
    fig, (prices, margins) = style.figure(
        f"Price competition: arbitrageurs undercut by {100 * (1 - race.factor):.0f}% per round", 2
    )
    shades = colormaps["viridis"]
    for t in range(race.rounds + 1):
        tone = shades(t / max(race.rounds, 1))
        label = "round 0 = market price $C_P(u)$" if t == 0 else (f"round {t}" if t in (1, race.rounds) else None)
        prices.plot(u, race.prices[t], color=tone, lw=1.3, label=label)
        margins.plot(u, race.margins[t], color=tone, lw=1.3, label=label)
    prices.plot(u, race.arbitrage_cost, color=style.ARBITRAGEUR, lw=2, ls="--", label="arbitrage cost $C_q(u)$ (floor)")
    style.percent_axis(prices, "x")
    style.finish(
        prices,
        "Consumer price after each round",
        style.SOLVE_RATE,
        style.cost_label(competition.cost_unit),
        legend="upper left",
    )
    style.percent_axis(margins, "x")
    style.percent_axis(margins, "y")
    margins.set_ylim(bottom=0)
    style.finish(
        margins, "Arbitrageurs' net margin after each round", style.SOLVE_RATE, style.MARGIN, legend="upper left"
    )
    ratio = competition.final_ratio
    return Section(
        "price_competition",
        "Price competition between arbitrageurs",
        (
            f"Arbitrageurs with the same cost take turns cutting the price by {100 * (1 - race.factor):.0f}%, never "
            f"below their cost, for {race.rounds} rounds, starting from the market price of the pair market.",
            f"After {race.rounds} rounds customers pay {100 * float(min(ratio)):.0f}% of the market price where the "
            f"margin allows it ({100 * float(ratio.mean()):.0f}% on average over u): competition hands the margin "
            "to customers.",
        ),
        fig,
    )
