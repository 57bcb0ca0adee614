"""Price competition: arbitrageurs with the pair market's cost take turns undercutting (METHOD §5.9)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from modelarb.core.result import ArbitrageResult
from modelarb.economics import UndercutResult, undercut

Array = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class PriceCompetition:
    """The undercutting race on the pair market's levels."""

    levels: Array
    race: UndercutResult
    cost_unit: str

    @property
    def final_ratio(self) -> Array:
        """Consumer price after the last round over the market price, per level."""
        return self.race.price_ratio[-1]

    def metrics(self) -> dict[str, float]:
        return {
            "competition.min_price_ratio": float(np.nanmin(self.final_ratio)),
            "competition.mean_price_ratio": float(np.nanmean(self.final_ratio)),
        }


def price_competition(pair: ArbitrageResult) -> PriceCompetition:
    """The paper's race: 7 rounds of price_{t+1} = max(0.93 · price_t, C_q) from the market price."""
    return PriceCompetition(pair.levels, undercut(pair.market_price, pair.arbitrage_cost), pair.cost_unit)
