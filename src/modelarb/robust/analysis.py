"""`run`: robust arbitrage end to end — fit on bootstrapped fit samples, evaluate on another domain."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from modelarb.core.grid import pass_curves
from modelarb.data.outcomes import Outcomes
from modelarb.errors import AnalysisError
from modelarb.parallel import Executor, executor_for
from modelarb.robust.bootstrap import NO_FIT, FitProblem, fit_bootstraps
from modelarb.robust.cascades import SampleCascades
from modelarb.robust.domains import domain_mask
from modelarb.robust.fit import evaluation_margins, exact_evaluation_margins
from modelarb.robust.sampling import ACCOUNTINGS, Accounting, FitSampler
from modelarb.robust.scheme import RobustScheme

Array = NDArray[np.float64]
PAPER_FIT_BUDGETS = (1.0, 3.0, 5.0, 10.0, 30.0, 100.0, 1000.0)
Evaluation = Literal["paper", "exact"]
EVALUATIONS: tuple[str, ...] = ("paper", "exact")


@dataclass(frozen=True, eq=False)
class RobustResult:
    """Evaluation margins of caps fitted on bootstrapped fit samples, per fit budget.

    `margins`, `first_caps` and `draws` are (fit budgets, bootstraps): the evaluation
    margin of each fitted cascade, its first-stage cap τ_1 (NaN when the budget bought
    no draw; the margin is then 0), and the draws the budget bought. `evaluation` says how
    the evaluation domain's margins were computed: on the paper's budget grid or exactly.
    """

    providers: tuple[str, ...]
    fit_domain: str
    eval_domain: str
    fit_instances: int
    eval_instances: int
    fit_budgets: Array
    accounting: Accounting
    seed: int
    unit: str
    margins: Array
    first_caps: Array
    draws: NDArray[np.int64]
    total_cap: float
    evaluation: Evaluation = "paper"

    @property
    def bootstraps(self) -> int:
        return int(self.margins.shape[1])

    @property
    def mean(self) -> Array:
        """Mean evaluation margin per fit budget."""
        return self.margins.mean(axis=1)

    @property
    def p5(self) -> Array:
        """5th percentile of the evaluation margin per fit budget."""
        return np.percentile(self.margins, 5, axis=1)

    @property
    def p95(self) -> Array:
        """95th percentile of the evaluation margin per fit budget."""
        return np.percentile(self.margins, 95, axis=1)

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON (keys listed in `modelarb robust --help`)."""
        return {
            "providers": list(self.providers),
            "fit_domain": self.fit_domain,
            "eval_domain": self.eval_domain,
            "fit_instances": self.fit_instances,
            "eval_instances": self.eval_instances,
            "accounting": self.accounting,
            "evaluation": self.evaluation,
            "seed": self.seed,
            "bootstraps": self.bootstraps,
            "cost_unit": self.unit,
            "total_cap": self.total_cap,
            "fit_budgets": self.fit_budgets,
            "mean": self.mean,
            "p5": self.p5,
            "p95": self.p95,
            "mean_draws": self.draws.mean(axis=1),
            "margins": self.margins,
            "first_caps": self.first_caps,
            "draws": self.draws,
        }


def run(
    outcomes: Outcomes,
    fit_domain: str = "all",
    eval_domain: str = "all",
    fit_budgets: Sequence[float] = PAPER_FIT_BUDGETS,
    bootstraps: int = 1000,
    seed: int = 0,
    accounting: Accounting = "paper",
    executor: Executor | str | None = None,
    *,
    mapping: Mapping[str, str] | None = None,
    scheme: RobustScheme | None = None,
    chunk_size: int = 10,
    progress: Callable[[int], None] | None = None,
    evaluation: Evaluation = "paper",
) -> RobustResult:
    """Robust arbitrage (METHOD §6) for a pair market (cascade order = `outcomes.providers`).

    For each bootstrap and fit budget: buy a fit sample from `fit_domain`, fit the caps on
    it, and score them on the full data of `eval_domain`. Bootstrap b always uses the
    stream SeedSequence(seed, spawn_key=(b,)), so any executor gives the same numbers.
    `executor` is an Executor, 'serial' or 'processes' (default); `progress(n)` is called
    as n more bootstraps finish. Domains are specs for `domain_mask`. `evaluation="exact"`
    scores the fitted caps on the evaluation domain with exact curves (robust/exact.py); the
    fit itself always uses the sample's curves on the budget grid, as METHOD §6 defines it.
    """
    scheme = scheme or RobustScheme.for_market(outcomes)
    budgets_in = np.asarray(fit_budgets, dtype=np.float64)
    _check(outcomes, budgets_in, bootstraps, seed, accounting, chunk_size)
    if evaluation not in EVALUATIONS:
        raise AnalysisError(f"unknown evaluation scheme {evaluation!r}; choose one of {', '.join(EVALUATIONS)}")
    fit_part = outcomes.select(instances=domain_mask(outcomes, fit_domain, mapping))
    eval_part = outcomes.select(instances=domain_mask(outcomes, eval_domain, mapping))
    caps = scheme.caps()
    fit_curves = pass_curves(fit_part, scheme.budgets)
    problem = FitProblem(
        sampler=FitSampler(fit_curves, scheme.budgets, scheme.censor_at, scheme.shared_uniform),
        scheme=scheme,
        cascades=SampleCascades(scheme.budgets, caps),
        fit_budgets=budgets_in,
        accounting=accounting,
        seed=seed,
    )
    score = exact_evaluation_margins if evaluation == "exact" else evaluation_margins
    scores = score(eval_part, scheme, caps)
    choice = np.empty((len(budgets_in), bootstraps), dtype=np.int64)
    draws = np.empty_like(choice)
    chunks = [(start, min(start + chunk_size, bootstraps)) for start in range(0, bootstraps, chunk_size)]
    runner = executor if executor is not None and not isinstance(executor, str) else executor_for(executor)
    for _, fits in runner.map_chunks(fit_bootstraps, problem, chunks):
        stop = fits.start + fits.choice.shape[1]
        choice[:, fits.start : stop] = fits.choice
        draws[:, fits.start : stop] = fits.draws
        if progress is not None:
            progress(stop - fits.start)
    fitted = choice != NO_FIT
    return RobustResult(
        providers=outcomes.providers,
        fit_domain=fit_domain,
        eval_domain=eval_domain,
        fit_instances=fit_part.n_instances,
        eval_instances=eval_part.n_instances,
        fit_budgets=budgets_in,
        accounting=accounting,
        seed=seed,
        unit=outcomes.unit,
        margins=np.where(fitted, scores[choice], 0.0),
        first_caps=np.where(fitted, caps[choice, 0], np.nan),
        draws=draws,
        total_cap=scheme.total_cap,
        evaluation=evaluation,
    )


def _check(
    outcomes: Outcomes, fit_budgets: Array, bootstraps: int, seed: int, accounting: str, chunk_size: int
) -> None:
    if outcomes.n_providers != 2:
        raise AnalysisError(
            f"robust arbitrage fits a pair cascade: give exactly two providers in cascade order, "
            f"got {outcomes.n_providers} ({', '.join(outcomes.providers)})"
        )
    if fit_budgets.ndim != 1 or fit_budgets.size == 0:
        raise AnalysisError("give at least one fit budget, e.g. 1,10,100")
    if not all(math.isfinite(f) and f > 0 for f in fit_budgets.tolist()):
        raise AnalysisError(f"fit budgets must be positive and finite, got {fit_budgets.tolist()}")
    if bootstraps < 1:
        raise AnalysisError(f"bootstraps must be at least 1, got {bootstraps}")
    if seed < 0:
        raise AnalysisError(f"the seed must be a non-negative integer, got {seed}")
    if chunk_size < 1:
        raise AnalysisError(f"chunk_size must be at least 1, got {chunk_size}")
    if accounting not in ACCOUNTINGS:
        raise AnalysisError(f"unknown accounting {accounting!r}; use one of {', '.join(ACCOUNTINGS)}")
