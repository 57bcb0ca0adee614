"""Distillation: how a student checkpoint's margin against its teacher grows with distillation data (METHOD §5.10)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from modelarb.core import paper
from modelarb.core.search import best_solve_rate
from modelarb.data.outcomes import Outcomes
from modelarb.economics import DistillationResult, distillation
from modelarb.experiments.curves import provider_costs
from modelarb.experiments.paper_data import Distillation
from modelarb.experiments.settings import Settings

Array = NDArray[np.float64]
CURVE_LEVELS = 200


@dataclass(frozen=True, eq=False)
class DistillationSeries:
    """A teacher and its students: margins per checkpoint, their fit, pass@k and every model's C_p(u)."""

    domain: str
    spec: Distillation
    result: DistillationResult
    levels: Array
    costs: Array

    def metrics(self) -> dict[str, float]:
        return {
            f"distill.{self.domain}.{student}": float(margin)
            for student, margin in zip(self.result.students, self.result.max_margin, strict=True)
        }


def distillation_series(domain: str, outcomes: Outcomes, spec: Distillation, settings: Settings) -> DistillationSeries:
    """Each student paired with the teacher; C_p(u) of all of them from u = 0.01 to the best solve rate."""
    result = distillation(outcomes, spec.teacher, spec.students, spec.sizes, settings.scheme)
    market = outcomes.select([*spec.students, spec.teacher])
    grid = paper.PaperSettings.for_unit(outcomes.unit).distill_grid
    levels = np.linspace(0.01, best_solve_rate(market, settings.scheme), CURVE_LEVELS)
    return DistillationSeries(domain, spec, result, levels, provider_costs(market, levels, settings.scheme, grid))
