"""One entry point for cascade search, whatever the scheme."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from modelarb.core import paper
from modelarb.core.exact import Orders, exact_search
from modelarb.core.partition import Partition, partitioned_search
from modelarb.core.result import ArbitrageResult
from modelarb.core.scales import settings_for
from modelarb.data.outcomes import Outcomes
from modelarb.errors import AnalysisError

Scheme = Literal["exact", "paper"]
SCHEMES: tuple[str, ...] = ("exact", "paper")
MAX_GRID_STAGES = 5  # 21^5 raw cap vectors, ~88k after trimming: the largest paper grid searched


def best_solve_rate(outcomes: Outcomes, scheme: Scheme = "exact") -> float:
    """The highest solve rate a single provider reaches (paper: within the budget grid)."""
    if scheme == "paper":
        return paper.best_solve_rate(outcomes, settings_for(outcomes).market_grid)
    return float((outcomes.s > 0).mean(axis=0).max())


def check_scheme(scheme: str) -> None:
    """A scheme must be one of SCHEMES."""
    if scheme not in SCHEMES:
        raise AnalysisError(f"unknown scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")


def check_levels(levels: NDArray[np.float64], best: float) -> NDArray[np.float64]:
    """Levels must be a non-empty grid of solve rates in (0, best]."""
    levels = np.asarray(levels, dtype=float)
    if levels.size == 0:
        raise AnalysisError("the grid of solve rates is empty; give e.g. --levels 0.68:best:1000")
    if not np.all(np.isfinite(levels)) or levels.min() <= 0 or levels.max() > best + 1e-9:
        raise AnalysisError(
            f"solve rates must lie in (0, {best:.4f}] (the best single provider's solve rate); "
            f"got {levels.min():.4f} to {levels.max():.4f}"
        )
    return levels


def search(
    outcomes: Outcomes,
    levels: NDArray[np.float64],
    scheme: Scheme = "exact",
    *,
    caps: NDArray[np.float64] | None = None,
    select: paper.Selection | None = None,
    orders: Orders = None,
    beam_width: int | None = None,
    max_depth: int | None = None,
    partition: Partition | None = None,
) -> ArbitrageResult:
    """The cheapest cascade at each target solve rate u.

    Paper scheme: over `caps` (default: the paper's pair grid choosing one cap vector by
    mean margin for two providers, its 20-point grid per stage for more).
    Exact scheme: over every cap that changes an attempt count, and over provider `orders`
    (exhaustive when small enough, else branch and bound or a beam search: see `exact_search`),
    cascades of at most `max_depth` stages; split by first-stage provider and run on an executor when a
    `partition` is given (`partitioned_search`).
    """
    check_scheme(scheme)
    if scheme == "paper" and (orders is not None or beam_width is not None or max_depth is not None):
        raise AnalysisError("orders, beam width and depth apply to the exact scheme; use --scheme exact")
    if scheme == "paper" and partition is not None:
        raise AnalysisError("a partitioned search (--workers, --cluster) is for the exact scheme; use --scheme exact")
    levels = check_levels(levels, best_solve_rate(outcomes, scheme))
    if scheme == "paper":
        settings = settings_for(outcomes)
        pair = outcomes.n_providers == 2
        if caps is None and outcomes.n_providers > MAX_GRID_STAGES:
            raise AnalysisError(
                f"the paper's cap grid over {outcomes.n_providers} providers is too large to search; choose at most "
                f"{MAX_GRID_STAGES} providers (e.g. those that are cheapest somewhere) or use --scheme exact"
            )
        if caps is None:
            caps = settings.pair_caps() if pair else settings.stage_caps(outcomes.n_providers)
        chosen = select or ("mean_margin" if pair else "per_level")
        return paper.grid_search(outcomes, levels, caps, chosen, settings.grid, market_grid=settings.market_grid)
    if partition is not None:
        return partitioned_search(
            outcomes, levels, partition, orders=orders, beam_width=beam_width, max_depth=max_depth
        )
    return exact_search(outcomes, levels, orders=orders, beam_width=beam_width, max_depth=max_depth)


@dataclass(frozen=True)
class ExactSettings:
    """How the exact scheme searches (see `exact_search`): provider orders, beam width, most stages, and the
    `partition` that splits it across an executor (None: one search in this process)."""

    orders: Orders = None
    beam_width: int | None = None
    max_depth: int | None = None
    partition: Partition | None = None

    def given(self) -> bool:
        return (
            self.orders is not None
            or self.beam_width is not None
            or self.max_depth is not None
            or self.partition is not None
        )
