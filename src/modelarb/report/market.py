"""The analysis behind a report for any market: arbitrage curve, out-of-sample margins, revenue shares, entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from modelarb.core.holdout import CrossValidated, cross_validate
from modelarb.core.result import ArbitrageResult
from modelarb.core.search import Scheme
from modelarb.data.outcomes import Outcomes
from modelarb.economics import EntryResult, RevenueResult, SegmentationResult, market_arbitrage, market_entry
from modelarb.economics import revenue as revenue_of
from modelarb.economics import segmentation as segmentation_of

Array = NDArray[np.float64]
SPACED_CHECKS = 3  # cross-validated levels besides the maximum margin's, evenly spaced over the reached levels


@dataclass(frozen=True)
class Checked:
    """The cross-validated margin at one level of the arbitrage result (`index` into its levels)."""

    index: int
    level: float
    cross_validated: CrossValidated


@dataclass(frozen=True, eq=False)
class MarketAnalysis:
    """Everything a market report shows: `checks` are empty when cross-validation was skipped (0 folds)."""

    source: str
    instances: int
    scheme: Scheme
    result: ArbitrageResult
    revenue: RevenueResult
    segmentation: SegmentationResult
    folds: int
    checks: tuple[Checked, ...]
    entry: EntryResult | None

    @property
    def unit(self) -> str:
        return self.result.cost_unit

    @property
    def best(self) -> int:
        """Index of the level with the largest in-sample margin."""
        return int(self.result.margin.argmax())

    def check_at(self, index: int) -> Checked | None:
        """The cross-validated margin at level `index`, if that level was checked."""
        return next((c for c in self.checks if c.index == index), None)


def checked_indices(result: ArbitrageResult, spaced: int = SPACED_CHECKS) -> list[int]:
    """The levels to cross-validate: `spaced` evenly spaced ones a cascade reaches, and the maximum margin's."""
    reached = np.flatnonzero(result.cascade_at >= 0)
    if reached.size == 0:
        return []
    picks = reached[np.linspace(0, reached.size - 1, min(spaced, reached.size)).round().astype(np.int64)]
    return sorted({*map(int, picks), int(result.margin.argmax())})


def analyse_market(
    outcomes: Outcomes,
    levels: Array,
    scheme: Scheme = "exact",
    *,
    folds: int = 5,
    entrant: str | None = None,
    entry_levels: Array | None = None,
    step: Callable[[str], None] | None = None,
) -> MarketAnalysis:
    """Search the market at `levels`, cross-validate its margins over `folds` folds (0: skip), price revenue shares,
    and, when `entrant` names a provider, compare shares before and after it joins the others (at `entry_levels`,
    default `levels`). `step(what)` is called before each stage, for progress."""
    tell = step or (lambda what: None)
    tell("searching cascades")
    result = market_arbitrage(outcomes, levels, scheme)
    checks = []
    if folds:
        for index in checked_indices(result):
            tell(f"cross-validating u = {result.levels[index]:.4f}")
            level = float(result.levels[index])
            cv = cross_validate(outcomes, level, scheme, folds=folds, in_sample=float(result.margin[index]))
            checks.append(Checked(index, level, cv))
    entry = None
    if entrant is not None:
        tell(f"pricing the market before and after {entrant} enters")
        incumbents = [p for p in outcomes.providers if p != entrant]
        entry = market_entry(outcomes, incumbents, entrant, levels if entry_levels is None else entry_levels, scheme)
    return MarketAnalysis(
        source=outcomes.source,
        instances=outcomes.n_instances,
        scheme=scheme,
        result=result,
        revenue=revenue_of(result),
        segmentation=segmentation_of(result),
        folds=folds,
        checks=tuple(checks),
        entry=entry,
    )
