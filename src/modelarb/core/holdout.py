"""Out-of-sample margins: fit a plan on some instances, score it on others with the same accounting.

A plan's in-sample margin tunes caps to the very instances it is scored on. Here the
instances are split into k folds; for each fold a plan is fitted on the other k − 1 and
served, unchanged, on the held-out fold. Its margin there is (C_P(s) − spend) / C_P(s),
with s the solve rate it reaches on the held-out instances, spend its expected spend per
task there (both exact, METHOD §4) and C_P that fold's own market price at s (capped at
the fold's best single-provider solve rate). It may be negative: a plan can lose money.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from modelarb.core.cascade import Cascade
from modelarb.core.exact_curves import evaluate, provider_cost_curves
from modelarb.data.outcomes import Outcomes
from modelarb.errors import AnalysisError

if TYPE_CHECKING:
    from modelarb.core.plan import Plan
    from modelarb.core.search import Scheme

Array = NDArray[np.float64]
DEFAULT_FOLDS = 5
Fitter = Callable[[Outcomes, float], "Plan"]  # (training instances, target solve rate) -> a plan
GAP_WARNING = 0.05  # warn when in-sample and cross-validated margins differ by more than 5 points


@dataclass(frozen=True)
class Served:
    """A plan served on a market: the solve rate it reaches, its spend per task, the market price there, margin."""

    solve_rate: float
    spend: float
    market_price: float
    margin: float


@dataclass(frozen=True)
class CrossValidated:
    """The held-out margin of each of `folds` folds, their mean and a 95 % interval (Student t over folds)."""

    folds: int
    seed: int
    margins: tuple[float, ...]
    solve_rates: tuple[float, ...]
    in_sample: float

    @property
    def mean(self) -> float:
        return float(np.mean(self.margins))

    @property
    def interval(self) -> tuple[float, float]:
        from scipy.stats import t

        k = len(self.margins)
        half = float(t.ppf(0.975, k - 1) * np.std(self.margins, ddof=1) / np.sqrt(k)) if k > 1 else np.inf
        return self.mean - half, self.mean + half

    @property
    def gap(self) -> float:
        """In-sample minus cross-validated margin."""
        return self.in_sample - self.mean

    def warning(self) -> str | None:
        """A sentence when the in-sample margin overstates (or understates) the held-out one by > GAP_WARNING."""
        if abs(self.gap) <= GAP_WARNING:
            return None
        return (
            f"the in-sample margin {100 * self.in_sample:.1f}% differs from the cross-validated "
            f"{100 * self.mean:.1f}% by {100 * abs(self.gap):.1f} points: caps tuned to these instances "
            "will not earn that on new ones"
        )

    def describe(self) -> str:
        low, high = self.interval
        return (
            f"cross-validated margin {100 * self.mean:.1f}% (95% interval {100 * low:.1f}% to {100 * high:.1f}%, "
            f"{self.folds} folds over instances, seed {self.seed}) · in-sample {100 * self.in_sample:.1f}%"
        )

    def to_dict(self) -> dict[str, Any]:
        low, high = self.interval
        return {
            "folds": self.folds,
            "seed": self.seed,
            "fold_margins": list(self.margins),
            "fold_solve_rates": list(self.solve_rates),
            "mean": self.mean,
            "low": low,
            "high": high,
            "in_sample": self.in_sample,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CrossValidated:
        """Read `to_dict` data back (the derived mean and interval are recomputed)."""
        return cls(
            int(data["folds"]),
            int(data["seed"]),
            tuple(float(v) for v in data["fold_margins"]),
            tuple(float(v) for v in data["fold_solve_rates"]),
            float(data["in_sample"]),
        )


@dataclass(frozen=True)
class Validation:
    """How a plan was chosen and what its fitting procedure earns out of sample.

    `chosen` is the cross-validated margin of the procedure that made the plan (`label`);
    `optimum` that of the in-sample optimum, which `plan fit --robust` compares the plan with
    (None for a plain fit); `rule` says how the plan was chosen, among `candidates` procedures.
    """

    rule: str
    label: str
    chosen: CrossValidated
    optimum: CrossValidated | None
    candidates: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "label": self.label,
            "candidates": self.candidates,
            "chosen": self.chosen.to_dict(),
            "in_sample_optimum": None if self.optimum is None else self.optimum.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Validation:
        optimum = data["in_sample_optimum"]
        return cls(
            str(data["rule"]),
            str(data["label"]),
            CrossValidated.from_dict(data["chosen"]),
            None if optimum is None else CrossValidated.from_dict(optimum),
            int(data["candidates"]),
        )


def serve(outcomes: Outcomes, cascades: Sequence[Cascade], weights: Sequence[float]) -> Served:
    """A mix of cascades (shares `weights` of tasks) served on `outcomes`, scored exactly against its market."""
    unknown = sorted({p for c in cascades for p in c.providers} - set(outcomes.providers))
    if unknown:
        raise AnalysisError(
            f"the market has no provider {', '.join(unknown)}; it must hold every provider the plan buys"
        )
    values = evaluate(outcomes, cascades)
    share = np.asarray(weights, dtype=float)
    solve, spend = float(share @ values.solve), float(share @ values.spend)
    best = float((outcomes.s > 0).mean(axis=0).max())
    level = min(solve, best)
    price = float(provider_cost_curves(outcomes, np.array([level])).min()) if level > 0 else 0.0
    margin = (price - spend) / price if price > 0 and np.isfinite(price) else 0.0
    return Served(solve, spend, price, margin)


def serve_plan(plan: Plan, outcomes: Outcomes) -> Served:
    """A saved plan served on another market (a held-out split, another domain, recorded attempts)."""
    return serve(outcomes, plan.cascades, plan.weights)


def folds_of(n_instances: int, folds: int, seed: int) -> NDArray[np.int64]:
    """A fold number per instance: a seeded shuffle dealt round-robin, so folds differ in size by at most one."""
    if not 2 <= folds <= n_instances:
        raise AnalysisError(
            f"cross-validation needs 2 to {n_instances} folds (one instance each at least), got {folds}"
        )
    order = np.random.default_rng(seed).permutation(n_instances)
    fold = np.empty(n_instances, dtype=np.int64)
    fold[order] = np.arange(n_instances) % folds
    return fold


def cross_validate(
    outcomes: Outcomes,
    target_solve_rate: float,
    scheme: Scheme = "exact",
    *,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    in_sample: float | None = None,
    fitter: Fitter | None = None,
) -> CrossValidated:
    """Fit a plan for `target_solve_rate` on k − 1 folds, serve it on the held-out fold, for each fold.

    `fitter(train, u)` makes the plan (default: the in-sample optimum, `plan.fit`, in `scheme`);
    the target is lowered to the training folds' best single-provider solve rate where it
    lies above it.
    """
    from modelarb.core.search import best_solve_rate

    fitter = fitter or _optimum(scheme)
    fold = folds_of(outcomes.n_instances, folds, seed)
    margins, solves = [], []
    for k in range(folds):
        train = outcomes.select(instances=fold != k)
        plan = fitter(train, min(target_solve_rate, best_solve_rate(train, scheme)))
        served = serve_plan(plan, outcomes.select(instances=fold == k))
        margins.append(served.margin)
        solves.append(served.solve_rate)
    if in_sample is None:
        in_sample = fitter(outcomes, target_solve_rate).margin
    return CrossValidated(folds, seed, tuple(margins), tuple(solves), in_sample)


def _optimum(scheme: Scheme) -> Fitter:
    """The in-sample optimum at a target solve rate, as a fitter."""
    from modelarb.core.plan import fit

    return lambda outcomes, level: fit(outcomes, target_solve_rate=level, scheme=scheme)
