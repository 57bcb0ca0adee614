"""`ArbitrageResult`: what a cascade search found, level by level."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modelarb.core.cascade import Cascade

Array = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class ArbitrageResult:
    """Market price, arbitrage cost and margin at each target solve rate u.

    `provider_costs[p, u]` is C_p(u); `cascade_at[u]` indexes `cascades` (-1: no
    cascade reaches u). Where the exact scheme mixes two cascades on its hull,
    `partner_at[u]` is the second one and `partner_weight[u]` its share of customers.
    `spend[u, p]` is the arbitrageur's expected spend on provider p at u. `proven`: the cascades are
    the proven cheapest of the search space (an exhaustive search, or a branch and bound that stayed one).
    """

    providers: tuple[str, ...]
    cost_unit: str
    scheme: str
    method: str
    levels: Array
    provider_costs: Array
    arbitrage_cost: Array
    cascades: tuple[Cascade, ...]
    cascade_at: NDArray[np.int64]
    spend: Array
    partner_at: NDArray[np.int64] | None = None
    partner_weight: Array | None = None
    proven: bool = False

    @property
    def market_price(self) -> Array:
        """C_P(u) = min_p C_p(u)."""
        return self.provider_costs.min(axis=0)

    @property
    def cheapest(self) -> NDArray[np.int64]:
        """Index of the cheapest single provider at each u."""
        return self.provider_costs.argmin(axis=0)

    @property
    def profit(self) -> Array:
        """Π(u) = max(C_P(u) − C_q(u), 0)."""
        with np.errstate(invalid="ignore"):
            return np.where(
                np.isfinite(self.market_price), np.maximum(self.market_price - self.arbitrage_cost, 0.0), 0.0
            )

    @property
    def margin(self) -> Array:
        """m(u) = Π(u) / C_P(u), 0 where the market cannot serve u."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.market_price > 0, self.profit / self.market_price, 0.0)

    @property
    def max_margin(self) -> float:
        return float(self.margin.max())

    @property
    def max_margin_at(self) -> float:
        return float(self.levels[int(self.margin.argmax())])

    def spaced_levels(self, count: int) -> list[int]:
        """About `count` evenly spaced level indices, and the one with the largest margin, in order."""
        spaced = np.linspace(0, len(self.levels) - 1, min(count, len(self.levels))).round().astype(np.int64)
        return sorted({*map(int, spaced), int(self.margin.argmax())})

    def cascade_for(self, k: int) -> Cascade | None:
        """The (main) cascade used at level index k."""
        index = int(self.cascade_at[k])
        return self.cascades[index] if index >= 0 else None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for `--json` and reports."""
        return {
            "providers": list(self.providers),
            "cost_unit": self.cost_unit,
            "scheme": self.scheme,
            "method": self.method,
            "levels": self.levels,
            "market_price": self.market_price,
            "provider_costs": {p: self.provider_costs[k] for k, p in enumerate(self.providers)},
            "cheapest_provider": [self.providers[k] for k in self.cheapest],
            "arbitrage_cost": self.arbitrage_cost,
            "profit": self.profit,
            "margin": self.margin,
            "max_margin": self.max_margin,
            "max_margin_at": self.max_margin_at,
            "cascades": [c.to_dict() for c in self.cascades],
            "cascade_at": self.cascade_at,
            "partner_at": self.partner_at,
            "partner_weight": self.partner_weight,
            "spend_by_provider": {p: self.spend[:, k] for k, p in enumerate(self.providers)},
        }
