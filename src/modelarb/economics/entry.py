"""Market entry: a provider joins a market; who loses revenue share (METHOD §5.8 applied before and after entry)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modelarb.core.result import ArbitrageResult
from modelarb.core.search import ExactSettings, Scheme, best_solve_rate, check_levels
from modelarb.data.outcomes import Outcomes
from modelarb.economics.larger import market_arbitrage
from modelarb.economics.revenue import RevenueResult, revenue
from modelarb.economics.submarket import read_submarket, searched_apart, submarket_settings
from modelarb.errors import AnalysisError
from modelarb.parallel import alongside

Array = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class EntryResult:
    """Revenue of the market before and after `entrant` joins the `incumbents`, on one grid of u.

    Share arrays have one column per provider of `providers` (incumbents, then the entrant,
    whose share before entry is 0); the `_with` arrays add the arbitrageur as a last column.
    """

    incumbents: tuple[str, ...]
    entrant: str
    before: RevenueResult
    after: RevenueResult

    @property
    def providers(self) -> tuple[str, ...]:
        return (*self.incumbents, self.entrant)

    @property
    def levels(self) -> Array:
        return self.after.levels

    @property
    def cost_unit(self) -> str:
        return self.after.cost_unit

    @property
    def shares_with_before(self) -> Array:
        shares = self.before.shares_with
        return np.insert(shares, len(self.incumbents), 0.0, axis=1)

    @property
    def shares_with_after(self) -> Array:
        return self.after.shares_with

    @property
    def shares_without_before(self) -> Array:
        return np.column_stack([self.before.shares_without, np.zeros(len(self.levels))])

    @property
    def shares_without_after(self) -> Array:
        return self.after.shares_without

    @property
    def average_with_before(self) -> Array:
        """Mean over u of `shares_with_before`, per column."""
        return _mean(self.shares_with_before)

    @property
    def average_with_after(self) -> Array:
        return _mean(self.shares_with_after)

    @property
    def average_without_before(self) -> Array:
        return _mean(self.shares_without_before)

    @property
    def average_without_after(self) -> Array:
        return _mean(self.shares_without_after)

    def to_dict(self) -> dict[str, Any]:
        columns = (*self.providers, "arbitrageur")

        def named(shares: Array, names: tuple[str, ...]) -> dict[str, Any]:
            average = _mean(shares)
            return {name: {"per_level": shares[:, k], "average": average[k]} for k, name in enumerate(names)}

        return {
            "incumbents": list(self.incumbents),
            "entrant": self.entrant,
            "cost_unit": self.cost_unit,
            "levels": self.levels,
            "shares_with_arbitrage": {
                "before": named(self.shares_with_before, columns),
                "after": named(self.shares_with_after, columns),
            },
            "shares_without_arbitrage": {
                "before": named(self.shares_without_before, self.providers),
                "after": named(self.shares_without_after, self.providers),
            },
        }


def market_entry(
    outcomes: Outcomes,
    incumbents: Sequence[str],
    entrant: str,
    levels: Array,
    scheme: Scheme = "paper",
    exact: ExactSettings | None = None,
) -> EntryResult:
    """Revenue shares before and after `entrant` joins `incumbents`, both markets on `outcomes`' instances.

    Both markets are searched the same way (paper scheme: the cheapest cascade at each u on
    the per-stage grid), so the shares compare like with like. The exact scheme searches the
    market after entry first and reads the market before it from that search where this is
    exact (a proven optimum in which the entrant serves no level: `submarket.read_submarket`);
    otherwise the market before entry is searched too, at the same time as the market after it
    when the latter is a beam search (`parallel.alongside`).
    """
    incumbents = tuple(incumbents)
    if not incumbents:
        raise AnalysisError("market entry needs at least one incumbent provider")
    if entrant in incumbents:
        raise AnalysisError(f"the entrant {entrant!r} is already an incumbent; name a provider outside the market")
    exact = exact or ExactSettings()
    before_market, after_market = outcomes.select(list(incumbents)), outcomes.select([*incumbents, entrant])
    check_levels(levels, best_solve_rate(before_market, scheme))
    cut = submarket_settings(exact, incumbents)

    def search_after() -> ArbitrageResult:
        return market_arbitrage(after_market, levels, scheme, same_grid=True, exact=exact)

    def search_before() -> ArbitrageResult:
        return market_arbitrage(before_market, levels, scheme, same_grid=True, exact=cut)

    if scheme == "exact" and searched_apart(after_market, exact):  # two beam searches: at once
        after, before = alongside(search_after, search_before)
    else:
        after = search_after()
        before = read_submarket(after, incumbents, exact) or search_before()
    return EntryResult(incumbents, entrant, revenue(before), revenue(after))


def _mean(shares: Array) -> Array:
    """Mean over the levels u, per column (levels no provider reaches are left out)."""
    return np.asarray(np.nanmean(shares, axis=0))
