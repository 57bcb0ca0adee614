"""Solve rates above the best single provider: no market price, but a cascade may still reach them.

No provider alone solves more than its best solve rate u_P = max_p mean_i [s_ip > 0], so
above u_P the market price C_P(u) is +∞ and no margin is defined. A cascade of several
providers solves every instance some provider solves (each bought up to its saturation cap),
so cascades reach u_A = mean_i [max_p s_ip > 0] ≥ u_P. Between the two the arbitrageur
alone can sell, at its cost C_A(u) (the exact scheme's hull: the paper's grid defines no
price there to reproduce, so both schemes report it exactly); above u_A nobody can.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modelarb.core.exact import exact_search
from modelarb.core.partition import partitioned_search
from modelarb.core.result import ArbitrageResult
from modelarb.core.search import ExactSettings, best_solve_rate
from modelarb.core.units import with_unit
from modelarb.data.outcomes import Outcomes
from modelarb.errors import AnalysisError

Array = NDArray[np.float64]
DEFAULT_COUNT = 100
ARBITRAGEUR_ONLY = "no market price; arbitrageur only"


def best_cascade_solve_rate(outcomes: Outcomes) -> float:
    """u_A: the share of instances some provider solves, which a cascade of all of them reaches."""
    return float((outcomes.s > 0).any(axis=1).mean())


@dataclass(frozen=True, eq=False)
class BeyondMarket:
    """Above u_P (`best_single`) up to u_A (`best_cascade`): the arbitrageur's cost and cascades at `levels`
    (`result` is None when no cascade reaches above u_P)."""

    best_single: float
    best_cascade: float
    result: ArbitrageResult | None

    def message(self, unit: str) -> str:
        """One sentence stating what can be sold above the market."""
        if self.result is None:
            return (
                f"above u = {self.best_single:.4f}, the best single provider's solve rate, nobody sells: "
                "no cascade solves an instance no single provider solves"
            )
        low = float(self.result.arbitrage_cost[0])
        high = float(self.result.arbitrage_cost[-1])
        fmt = (lambda c: f"${c:.4f}") if unit == "USD" else (lambda c: with_unit(f"{c:.4g}", unit))
        return (
            f"above u = {self.best_single:.4f} (the best single provider's solve rate) up to "
            f"u = {self.best_cascade:.4f} (the best cascade's): {ARBITRAGEUR_ONLY}, at cost C_A(u) from "
            f"{fmt(low)} to {fmt(high)} per task; above u = {self.best_cascade:.4f} nobody sells"
        )

    def to_dict(self) -> dict[str, Any]:
        result = self.result
        return {
            "best_single_solve_rate": self.best_single,
            "best_cascade_solve_rate": self.best_cascade,
            "note": ARBITRAGEUR_ONLY,
            "levels": [] if result is None else result.levels,
            "arbitrage_cost": [] if result is None else result.arbitrage_cost,
            "cascades": [] if result is None else [c.to_dict() for c in result.cascades],
            "cascade_at": [] if result is None else result.cascade_at,
            "partner_at": [] if result is None else result.partner_at,
            "partner_weight": [] if result is None else result.partner_weight,
        }


def beyond_market(
    outcomes: Outcomes, levels: Array | None = None, count: int = DEFAULT_COUNT, exact: ExactSettings | None = None
) -> BeyondMarket:
    """C_A(u) above u_P: at `levels` (each in (u_P, u_A]), default `count` levels spaced up to u_A, searched
    with `exact` (orders, beam, depth, partition; default: the exact search's own)."""
    single, top = best_solve_rate(outcomes, "exact"), best_cascade_solve_rate(outcomes)
    if levels is None:
        if top <= single + 0.5 / outcomes.n_instances:
            return BeyondMarket(single, top, None)
        levels = np.linspace(single, top, count + 1)[1:]
    levels = np.asarray(levels, dtype=float)
    check_beyond(levels, single, top)
    exact = exact or ExactSettings()
    orders, width, depth = exact.orders, exact.beam_width, exact.max_depth
    if exact.partition is None:  # not `search`, which keeps levels within the market's reach
        found = exact_search(outcomes, levels, orders=orders, beam_width=width, max_depth=depth)
    else:
        found = partitioned_search(outcomes, levels, exact.partition, orders=orders, beam_width=width, max_depth=depth)
    return BeyondMarket(single, top, found)


def check_beyond(levels: Array, single: float, top: float) -> None:
    """Levels above the market must lie in (u_P, u_A]; a clear message beyond the best cascade."""
    if levels.size and float(levels.max()) > top + 1e-9:
        raise AnalysisError(
            f"no cascade reaches u = {float(levels.max()):.4f}: the best cascade solves {top:.4f} of the instances "
            f"(every instance some provider solves; the best single provider solves {single:.4f}), and nobody "
            "sells above that"
        )
