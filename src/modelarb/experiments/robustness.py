"""Robust arbitrage: margins of cascades fitted on a bought sample, across domains (METHOD §6)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from modelarb import robust
from modelarb.data.outcomes import Outcomes
from modelarb.experiments.settings import Settings

DOMAIN_PAIRS = (("all", "all"), ("not-django", "django"), ("django", "not-django"))
REPORTED_BUDGETS = (1.0, 10.0, 100.0, 1000.0)


@dataclass(frozen=True, eq=False)
class Robustness:
    """One bootstrapped robust-arbitrage run per (fit domain, evaluation domain) pair."""

    runs: tuple[robust.RobustResult, ...]

    def metrics(self) -> dict[str, float]:
        out = {}
        for run in self.runs:
            for budget in REPORTED_BUDGETS:
                k = np.flatnonzero(run.fit_budgets == budget)
                if k.size:
                    out[f"robust.{run.fit_domain}_to_{run.eval_domain}.{budget:g}"] = float(run.mean[k[0]])
        return out


def robustness(outcomes: Outcomes, settings: Settings, progress: Callable[[int], None] | None = None) -> Robustness:
    """Fit on each domain pair's fit domain with `settings.bootstraps` samples per fit budget; evaluate on the other.

    Bootstraps run in local processes, or on the Dask cluster of `settings.cluster`; `progress(n)`
    is called as n more bootstraps finish. The fit follows METHOD §6 on the budget grid; with the
    exact scheme the evaluation domain scores the fitted caps with exact curves.
    """
    executor = robust.executor_for(cluster=settings.cluster)
    return Robustness(
        tuple(
            robust.run(
                outcomes,
                fit,
                evaluate,
                settings.fit_budgets,
                settings.bootstraps,
                settings.seed,
                executor=executor,
                progress=progress,
                evaluation=settings.scheme,
            )
            for fit, evaluate in DOMAIN_PAIRS
        )
    )
