"""How finely to reproduce: the paper's grids and bootstrap count, or a quick cut of them."""

from __future__ import annotations

from dataclasses import dataclass, replace

from modelarb.core.search import Scheme
from modelarb.robust import PAPER_FIT_BUDGETS

QUICK_BOOTSTRAPS = 100


@dataclass(frozen=True)
class Settings:
    """Numbers of levels, bootstraps and fit budgets; the scheme; where bootstraps run."""

    scheme: Scheme = "paper"
    pair_levels: int = 1000
    market_levels: int = 100
    bootstraps: int = 1000
    fit_budgets: tuple[float, ...] = PAPER_FIT_BUDGETS
    seed: int = 0
    cluster: str | None = None

    def quick(self) -> Settings:
        """A faster run: 100 bootstraps instead of 1000.

        The level and cap grids stay the paper's: they take seconds, and coarser ones move
        numbers read at one u (the six-model shares at u = 0.75) off the paper's.
        """
        return replace(self, bootstraps=QUICK_BOOTSTRAPS)
