"""Revenue shares in the pair market, without and with the arbitrageur (METHOD §5.8)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelarb.core.result import ArbitrageResult
from modelarb.economics import RevenueResult, revenue

SHARES_AT = 0.75


@dataclass(frozen=True, eq=False)
class RevenueShares:
    """Who earns what at each u of the pair market."""

    revenue: RevenueResult

    def metrics(self) -> dict[str, float]:
        r = self.revenue
        k = r.index_of(SHARES_AT)
        names = (*r.providers, "arbitrageur")
        return {
            **{f"revenue.share_without_{p}": float(s) for p, s in zip(r.providers, r.shares_without[k], strict=True)},
            **{f"revenue.share_{p}": float(s) for p, s in zip(names, r.shares_with[k], strict=True)},
            "revenue.change_min": float(np.nanmin(r.revenue_change)),
            "revenue.change_mean": float(np.nanmean(r.revenue_change)),
        }


def revenue_shares(pair: ArbitrageResult) -> RevenueShares:
    return RevenueShares(revenue(pair))
