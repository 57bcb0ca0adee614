"""The numbers of robust arbitrage (METHOD §6), paper scheme."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from modelarb.core.grid import BudgetGrid
from modelarb.core.paper import pair_caps
from modelarb.core.scales import MarketScale, data_grid, is_paper_data
from modelarb.data.outcomes import Outcomes

Array = NDArray[np.float64]
DRAWS = (10, 30, 100, 300, 1000, 3000, 10000)  # draws the derived fit budgets buy, about


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

    @classmethod
    def for_market(cls, outcomes: Outcomes) -> RobustScheme:
        """The paper's numbers for the paper's data; otherwise the budget grid, cap grid and censoring cap
        placed on the market's own costs (core/scales.py): total cap T = the saturation cap, τ_1 from
        the cheapest attempt to T/2, draws censored at T/2 (the paper: T = 1, τ_1 to 0.5, censored at 0.5)."""
        if is_paper_data(outcomes):
            return cls()
        scale = MarketScale.of(outcomes)
        grid = data_grid(scale)
        total = grid.high
        return cls(
            grid=grid,
            total_cap=total,
            cap_low=min(scale.cheapest, total / 100),
            cap_high=total / 2,
            censor_at=total / 2,
        )

    def fit_budgets(self, outcomes: Outcomes, accounting: str) -> tuple[float, ...]:
        """Fit budgets buying about 10 to 10,000 draws: multiples of a draw's expected charge (the
        accounted providers' expected spend at the censoring cap), two significant digits."""
        from modelarb.core.exact_curves import provider_curves

        _, spend = provider_curves(outcomes, [self.censor_at])
        charge = float(spend[1, 0] if accounting == "paper" else spend[:, 0].sum())
        charge = charge if charge > 0 else self.censor_at
        return tuple(float(f"{charge * draws:.2g}") for draws in DRAWS)

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
