"""Who earns what at each solve rate u, without and with the arbitrageur (METHOD §5.8)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modelarb.core.result import ArbitrageResult

Array = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class RevenueResult:
    """Revenue per customer of each provider, and of the arbitrageur, at each level u.

    `without[u, p]`: the cheapest provider(s) earn C_P(u) (ties split), the others nothing.
    `with_arbitrage[u, p]`: where the arbitrageur undercuts (C_q(u) < C_P(u)), its expected
    spend on p; elsewhere as without. `profit[u]`: Π(u), the arbitrageur's revenue.
    Shares divide by C_P(u); they are NaN where no single provider reaches u.
    """

    levels: Array
    providers: tuple[str, ...]
    cost_unit: str
    market_price: Array
    without: Array
    with_arbitrage: Array
    profit: Array

    @property
    def arbitraged(self) -> NDArray[np.bool_]:
        """Levels where the arbitrageur serves the market."""
        return self.profit > 0

    @property
    def shares_without(self) -> Array:
        """(U, P) revenue shares without the arbitrageur."""
        return self.without / self._served_price[:, None]

    @property
    def shares_with(self) -> Array:
        """(U, P + 1) revenue shares with the arbitrageur; the last column is the arbitrageur's."""
        return np.column_stack([self.with_arbitrage, self.profit]) / self._served_price[:, None]

    @property
    def revenue_change(self) -> Array:
        """Σ_p revenue with the arbitrageur / C_P(u): what the providers keep of the market."""
        return self.with_arbitrage.sum(axis=1) / self._served_price

    @property
    def _served_price(self) -> Array:
        return np.where(np.isfinite(self.market_price) & (self.market_price > 0), self.market_price, np.nan)

    def index_of(self, level: float) -> int:
        """The index of the level nearest to `level`."""
        return int(np.abs(self.levels - level).argmin())

    def to_dict(self) -> dict[str, Any]:
        """Plain data for `--json` and reports; per-provider arrays are keyed by name."""
        return {
            "levels": self.levels,
            "providers": list(self.providers),
            "cost_unit": self.cost_unit,
            "market_price": self.market_price,
            "revenue_without": {p: self.without[:, k] for k, p in enumerate(self.providers)},
            "revenue_with": {p: self.with_arbitrage[:, k] for k, p in enumerate(self.providers)},
            "arbitrageur_profit": self.profit,
            "shares_without": {p: self.shares_without[:, k] for k, p in enumerate(self.providers)},
            "shares_with": {p: self.shares_with[:, k] for k, p in enumerate((*self.providers, "arbitrageur"))},
            "revenue_change": self.revenue_change,
            "arbitraged": self.arbitraged,
        }


def revenue(result: ArbitrageResult) -> RevenueResult:
    """Revenue of every provider and of the arbitrageur at each level of `result`."""
    price = result.market_price
    reachable = np.isfinite(price)
    cheapest = (price[:, None] == result.provider_costs.T) & reachable[:, None]
    ties = np.maximum(cheapest.sum(axis=1, keepdims=True), 1)
    without = np.where(cheapest, np.where(reachable, price, 0.0)[:, None], 0.0) / ties
    profit = result.profit
    with_arbitrage = np.where((profit > 0)[:, None], result.spend, without)
    return RevenueResult(
        levels=result.levels,
        providers=result.providers,
        cost_unit=result.cost_unit,
        market_price=price,
        without=without,
        with_arbitrage=with_arbitrage,
        profit=profit,
    )
