"""The scales of a market (METHOD §5–6 grids) from its own attempt costs, not from the paper's dollars.

The paper's grids (budgets 1e-4 to 1 dollar; 2e3 to 1e9 compute units) fit the paper's
data and are kept exactly for it, so its numbers reproduce. Any other market gets grids
of the same shape placed where its attempts are: from below its cheapest attempt up to the
cap beyond which no provider's solve rate can grow (every failure of a solvable instance
bought, one attempt more).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from modelarb.core.grid import BudgetGrid
from modelarb.core.paper import PaperSettings
from modelarb.data.outcomes import Outcomes

PAPER_DATASET = "computational-arbitrage"
POINTS_PER_DECADE = 62.5  # the paper's density: 250 points over four decades
MIN_POINTS = 250


@dataclass(frozen=True)
class MarketScale:
    """`cheapest`: the least positive attempt cost; `saturation`: the least cap at which every provider
    reaches its full solve rate on every instance (max over solvable cells of c · (n − s + 1))."""

    cheapest: float
    saturation: float
    unit: str

    @classmethod
    def of(cls, outcomes: Outcomes) -> MarketScale:
        cost, n, s = outcomes.cost, outcomes.n, outcomes.s
        positive = cost[cost > 0]
        cheapest = float(positive.min()) if positive.size else 1.0
        solvable = s > 0
        need = np.where(solvable, cost * (n - s + 1), 0.0)
        saturation = float(need.max()) if solvable.any() else float(cost.max(initial=cheapest))
        return cls(cheapest, max(saturation, cheapest), outcomes.unit)


def is_paper_data(outcomes: Outcomes) -> bool:
    """Whether every provider's attempts are files of the paper's dataset (matched by checksum at load)."""
    return outcomes.dataset == PAPER_DATASET


def cascades_start(outcomes: Outcomes, best: float) -> float | None:
    """Where cascades start to matter below `best` (the best single provider's solve rate): the best mean pass@1
    (one attempt of the strongest provider; beyond it only retries and cascades help) when it lies below `best`;
    in one-attempt markets, where it does not, the weakest provider's solve rate (the range over which providers
    compete); None when every provider reaches `best` (within half an instance)."""
    reach = (outcomes.s > 0).mean(axis=0)
    starts = [float(outcomes.pass_at_1.mean(axis=0).max()), float(reach[reach > 0].min(initial=best))]
    return next((u for u in starts if 0 < u < best - 0.5 / outcomes.n_instances), None)


def data_grid(scale: MarketScale) -> BudgetGrid:
    """Log-spaced budgets from half the cheapest attempt to the saturation cap, at the paper's density."""
    low, high = scale.cheapest / 2, max(scale.saturation, scale.cheapest)
    points = max(MIN_POINTS, math.ceil(POINTS_PER_DECADE * math.log10(high / low)))
    return BudgetGrid(low, high, points)


def settings_for(outcomes: Outcomes) -> PaperSettings:
    """The paper scheme's grids for this market: the paper's own for its data, else from the market's costs.

    Derived grids keep the paper's shapes relative to the total cap T (the saturation cap):
    pair caps τ_1 log-spaced from the cheapest attempt to T/2, per-stage caps from the
    cheapest attempt to T, distillation caps to 0.15 T, trimmed to T.
    """
    if is_paper_data(outcomes):
        return PaperSettings.for_unit(outcomes.unit)
    scale = MarketScale.of(outcomes)
    grid = data_grid(scale)
    total = grid.high
    first = min(scale.cheapest, total / 100)
    return PaperSettings(
        grid=grid,
        market_grid=grid,
        pair=(first, total / 2, 100),
        stages=(first, total, 20),
        total=total,
        distill_grid=grid,
        distill_pair=(first, 0.15 * total, 100),
        distill_levels=None,
    )


def cutoff_notes(outcomes: Outcomes, top: float) -> list[str]:
    """One line per provider whose solve rate a cap of `top` cuts off: what it reaches within `top`, and in full."""
    from modelarb.core.exact_curves import provider_curves

    within, _ = provider_curves(outcomes, [top])
    full = (outcomes.s > 0).mean(axis=0)
    notes = []
    for p, name in enumerate(outcomes.providers):
        if within[p, 0] < full[p] - 0.5 / outcomes.n_instances:
            priced_out = float((outcomes.cost[:, p] > top).mean())
            notes.append(
                f"{name} reaches {within[p, 0]:.3f} within the grid's top budget {top:g} {outcomes.unit} "
                f"({full[p]:.3f} with every recorded attempt; one attempt costs more than that on "
                f"{priced_out:.0%} of instances)"
            )
    return notes
