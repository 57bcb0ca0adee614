"""Bootstrap fits: independent fit samples per bootstrap, each with its own seeded stream."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from modelarb.robust.cascades import SampleCascades
from modelarb.robust.fit import fit_caps
from modelarb.robust.sampling import Accounting, FitSampler
from modelarb.robust.scheme import RobustScheme

Array = NDArray[np.float64]
NO_FIT = -1  # chosen index when a fit budget buys no draw at all


def bootstrap_rng(seed: int, bootstrap: int) -> np.random.Generator:
    """The stream of bootstrap `bootstrap`: child `bootstrap` of SeedSequence(seed), whoever runs it."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(bootstrap,))))


@dataclass(frozen=True, eq=False)
class FitProblem:
    """Everything a worker needs to fit bootstraps: the fit domain's sampler, candidate cascades, budgets, seed."""

    sampler: FitSampler
    scheme: RobustScheme
    cascades: SampleCascades
    fit_budgets: Array
    accounting: Accounting
    seed: int


@dataclass(frozen=True, eq=False)
class BootstrapFits:
    """Fits of bootstraps `start`..`start + n`: chosen caps index and draws bought, each (budgets, n)."""

    start: int
    choice: NDArray[np.int64]
    draws: NDArray[np.int64]


def fit_bootstraps(problem: FitProblem, start: int, stop: int) -> BootstrapFits:
    """Fit bootstraps start..stop-1 at every fit budget.

    One sample per bootstrap is drawn for the largest budget; each smaller budget fits on
    the prefix it can pay for, so budgets share draws (common random numbers).
    """
    n_budgets = len(problem.fit_budgets)
    choice = np.full((n_budgets, stop - start), NO_FIT, dtype=np.int64)
    draws = np.zeros((n_budgets, stop - start), dtype=np.int64)
    for col, b in enumerate(range(start, stop)):
        rng = bootstrap_rng(problem.seed, b)
        costs, charged = problem.sampler.draw_until(rng, float(problem.fit_budgets.max()), problem.accounting)
        bought = np.searchsorted(charged, problem.fit_budgets, side="right")
        draws[:, col] = bought
        for row, n in enumerate(bought.tolist()):
            if n > 0:
                choice[row, col] = fit_caps(costs[:n], problem.scheme, problem.cascades)
    return BootstrapFits(start, choice, draws)
