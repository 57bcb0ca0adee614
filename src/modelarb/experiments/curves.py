"""Single-provider prices of performance C_p(u), in either scheme."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from modelarb.core import exact_curves, paper
from modelarb.core.grid import BudgetGrid
from modelarb.core.search import Scheme
from modelarb.data.outcomes import Outcomes

Array = NDArray[np.float64]


def provider_costs(outcomes: Outcomes, levels: Array, scheme: Scheme, grid: BudgetGrid | None = None) -> Array:
    """C_p(u) of each provider alone (P, U); the paper's scheme reads it off `grid` (default: its market grid)."""
    if scheme == "paper":
        grid = grid or paper.PaperSettings.for_unit(outcomes.unit).market_grid
        return paper.provider_cost_curves(outcomes, levels, grid)
    return exact_curves.provider_cost_curves(outcomes, levels)
