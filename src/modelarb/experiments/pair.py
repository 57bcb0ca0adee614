"""The pair market (GPT-5 mini then DeepSeek v3.2): cost curves, the arbitrageur's buy price, margin."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from modelarb.core.result import ArbitrageResult
from modelarb.core.search import best_solve_rate, search
from modelarb.data.outcomes import Outcomes
from modelarb.errors import AnalysisError
from modelarb.experiments.settings import Settings

Array = NDArray[np.float64]
LOWEST_LEVEL = 0.68
REPORTED_LEVELS = (0.70, 0.72, 0.74)


@dataclass(frozen=True, eq=False)
class PairMarket:
    """The arbitrageur's search on a two-provider market, and the numbers the paper quotes from it."""

    result: ArbitrageResult

    @property
    def caps(self) -> tuple[float, ...]:
        """Caps of the cascade used where the margin is largest."""
        cascade = self.result.cascade_for(int(self.result.margin.argmax()))
        return cascade.caps if cascade is not None else (np.nan,) * len(self.result.providers)

    def margin_at(self, level: float) -> float:
        """The margin at solve rate `level`, read off the level grid (linear between grid points)."""
        return float(np.interp(level, self.result.levels, self.result.margin))

    @property
    def crossover(self) -> float:
        """The first solve rate where the cheapest single provider changes (NaN if it never does)."""
        cheapest = self.result.cheapest
        changed = np.flatnonzero(cheapest != cheapest[0])
        return float(self.result.levels[changed[0]]) if changed.size else np.nan

    def metrics(self) -> dict[str, float]:
        at_max = int(self.result.margin.argmax())
        first, second = self.caps[0], self.caps[-1]
        return {
            "pair.cap_first": first,
            "pair.cap_second": second,
            **{f"pair.margin_at_{level:.2f}": self.margin_at(level) for level in REPORTED_LEVELS},
            "pair.max_margin": self.result.max_margin,
            "pair.max_margin_at": self.result.max_margin_at,
            "pair.market_price_at_max": float(self.result.market_price[at_max]),
            "pair.arbitrage_cost_at_max": float(self.result.arbitrage_cost[at_max]),
            "pair.crossover": self.crossover,
        }


def pair_market(outcomes: Outcomes, settings: Settings) -> PairMarket:
    """Cheapest cascade over u ∈ linspace(0.68, best single-provider solve rate) (METHOD §5.6)."""
    best = best_solve_rate(outcomes, settings.scheme)
    if best <= LOWEST_LEVEL:
        raise AnalysisError(
            f"the pair market's best solve rate is {best:.3f}, not above u = {LOWEST_LEVEL}: "
            "the pair experiment needs providers that solve more"
        )
    levels = np.linspace(LOWEST_LEVEL, best, settings.pair_levels)
    return PairMarket(search(outcomes, levels, settings.scheme))
