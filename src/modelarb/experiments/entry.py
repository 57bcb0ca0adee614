"""Market entry: mini-coder 4B joins the {Qwen3-Coder 30B, GPT-5 mini} market; who loses revenue share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from modelarb.core.search import best_solve_rate
from modelarb.data.outcomes import Outcomes
from modelarb.economics import EntryResult, market_entry
from modelarb.experiments.settings import Settings

LOWEST_LEVEL = 0.40


@dataclass(frozen=True, eq=False)
class MarketEntry:
    """Revenue shares of every provider before and after the entrant joins, on one grid of u."""

    entry: EntryResult

    def kept(self, provider: str, with_arbitrage: bool) -> float:
        """A provider's average revenue share after entry over its share before."""
        k = self.entry.providers.index(provider)
        e = self.entry
        before, after = (
            (e.average_with_before, e.average_with_after)
            if with_arbitrage
            else (e.average_without_before, e.average_without_after)
        )
        return float(after[k] / before[k]) if before[k] > 0 else np.nan

    def metrics(self) -> dict[str, float]:
        first = self.entry.incumbents[0]
        return {
            "entry.kept_without_arbitrage": self.kept(first, with_arbitrage=False),
            "entry.kept_with_arbitrage": self.kept(first, with_arbitrage=True),
        }


def entry_experiment(outcomes: Outcomes, incumbents: Sequence[str], entrant: str, settings: Settings) -> MarketEntry:
    """Shares before and after entry over u ∈ linspace(0.40, the incumbents' best solve rate)."""
    best = best_solve_rate(outcomes.select(list(incumbents)), settings.scheme)
    levels = np.linspace(LOWEST_LEVEL, best, settings.market_levels)
    return MarketEntry(market_entry(outcomes, incumbents, entrant, levels, settings.scheme))
