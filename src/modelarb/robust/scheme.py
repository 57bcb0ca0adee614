"""The numbers of robust arbitrage (METHOD §6), paper scheme."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from modelarb.core.grid import BudgetGrid
from modelarb.core.paper import pair_caps

Array = NDArray[np.float64]


@dataclass(frozen=True)
class RobustScheme:
    """The numbers of METHOD §6: budget grid, cap grid, censoring cap, fit and evaluation levels.

    `shared_uniform`: one uniform per draw serves every provider's inverse-CDF sample, as in
    the paper (its published margins need it); False samples providers independently.
    """

    grid: BudgetGrid = field(default_factory=BudgetGrid)
    total_cap: float = 1.0
    cap_low: float = 1e-4
    cap_high: float = 0.5
    cap_points: int = 100
    censor_at: float = 0.5
    shared_uniform: bool = True
    fit_level_low: float = 0.1
    fit_level_points: int = 100
    eval_window: float = 0.05
    eval_level_points: int = 20

    @property
    def budgets(self) -> Array:
        return self.grid.budgets

    def caps(self) -> Array:
        """Candidate caps (K, 2): τ_1 ∈ {0} ∪ log-spaced [cap_low, cap_high] ∪ {total}, τ_2 = total − τ_1."""
        return pair_caps(self.cap_low, self.cap_high, self.cap_points, self.total_cap)

    def fit_levels(self, best: float) -> Array:
        """Solve rates the fit averages over: fit_level_low to `best`, the best single provider's rate in the sample."""
        return np.linspace(self.fit_level_low, best, self.fit_level_points)

    def eval_levels(self, best: float) -> Array:
        """Solve rates the evaluation averages over: the top `eval_window` below `best`, the best single provider's."""
        return np.linspace(best - self.eval_window, best, self.eval_level_points)
