"""Distillation: how much a cheaper student lets an arbitrageur undercut its teacher (METHOD §5.10)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from modelarb.core import paper
from modelarb.core.cascade import Cascade
from modelarb.core.passk import pass_at_k
from modelarb.core.result import ArbitrageResult
from modelarb.core.scales import cascades_start, is_paper_data, settings_for
from modelarb.core.search import Scheme, best_solve_rate, check_levels, check_scheme, search
from modelarb.data.outcomes import Outcomes
from modelarb.economics.revenue import revenue
from modelarb.errors import AnalysisError

Array = NDArray[np.float64]
DISTILL_LEVELS = 100


@dataclass(frozen=True)
class LevelBand:
    """Levels asked for each pair: `count` from `start` to `stop` (None: the pair's best solve rate)."""

    start: float
    stop: float | None
    count: int


def distillation_levels(pair: Outcomes, best: float, band: LevelBand | None = None) -> Array:
    """The solve rates over which a (student, teacher) pair's margin is averaged, up to its best `best`.

    Given a `band`: that grid. On the paper's data: the paper's (METHOD §5.10: the top 0.1
    below the best; Lean: [0.7, 0.9]), so its numbers reproduce. On any other market, from the
    pair's own data: DISTILL_LEVELS levels from where cascades start to matter
    (`scales.cascades_start`: the stronger model's mean pass@1, or in one-attempt markets the
    weaker model's solve rate) up to `best`; when both reach the same, one instance's worth below `best`.
    """
    if band is not None:
        return check_levels(np.linspace(band.start, best if band.stop is None else band.stop, band.count), best)
    if is_paper_data(pair):
        return check_levels(settings_for(pair).distill_solve_rates(best, DISTILL_LEVELS), best)
    low = cascades_start(pair, best)
    if low is None:
        low = max(best - 1.0 / pair.n_instances, best / 2)
    return check_levels(np.linspace(low, best, DISTILL_LEVELS), best)


@dataclass(frozen=True)
class LogFit:
    """Least-squares line margin = intercept + slope · log10(tokens)."""

    intercept: float
    slope: float
    r_squared: float

    def predict(self, tokens: ArrayLike) -> Array:
        return self.intercept + self.slope * np.log10(np.asarray(tokens, dtype=float))


def fit_log(tokens: ArrayLike, values: ArrayLike) -> LogFit:
    """Fit values against log10(tokens); NaN when fewer than two distinct token counts."""
    x, y = np.log10(np.asarray(tokens, dtype=float)), np.asarray(values, dtype=float)
    if len(np.unique(x)) < 2:
        return LogFit(np.nan, np.nan, np.nan)
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (intercept + slope * x)
    total = np.sum((y - y.mean()) ** 2)
    r_squared = 1.0 - np.sum(residual**2) / total if total > 0 else 1.0
    return LogFit(float(intercept), float(slope), float(r_squared))


@dataclass(frozen=True, eq=False)
class DistillationResult:
    """Each student checkpoint (labelled with its distillation `tokens`) paired with the teacher.

    Per student s: `levels[s]` and `margin[s]` (the net margin at each level of the pair's
    cascade), `cascades[s]` (the pair's cascade at the top level), pass@k for k = 1..K, and
    the teacher's revenue per customer: alone in the market (C_teacher(u)), beside the student
    without an arbitrageur, and beside the student with one.
    """

    teacher: str
    students: tuple[str, ...]
    tokens: Array
    cost_unit: str
    scheme: str
    levels: Array
    margin: Array
    cascades: tuple[Cascade | None, ...]
    k: NDArray[np.int64]
    pass_at_k: Array
    teacher_pass_at_k: Array
    teacher_alone: Array
    teacher_without_arbitrage: Array
    teacher_with_arbitrage: Array

    @property
    def max_margin(self) -> Array:
        """Per student: the margin averaged over its levels, at the caps that maximise it (METHOD §5.10)."""
        return self.margin.mean(axis=1)

    @property
    def fit(self) -> LogFit:
        """max margin = a + b · log10(tokens)."""
        return fit_log(self.tokens, self.max_margin)

    @property
    def teacher_revenue_ratio(self) -> Array:
        """Per student: the teacher's mean revenue beside the student and the arbitrageur over its revenue alone."""
        return _ratio(self.teacher_with_arbitrage, self.teacher_alone)

    def to_dict(self) -> dict[str, Any]:
        fit = self.fit
        return {
            "teacher": self.teacher,
            "cost_unit": self.cost_unit,
            "scheme": self.scheme,
            "students": [
                {
                    "student": name,
                    "tokens": self.tokens[s],
                    "max_margin": self.max_margin[s],
                    "cascade": None if cascade is None else cascade.to_dict(),
                    "levels": self.levels[s],
                    "margin": self.margin[s],
                    "pass_at_k": self.pass_at_k[s],
                    "teacher_revenue": {
                        "alone": self.teacher_alone[s],
                        "without_arbitrage": self.teacher_without_arbitrage[s],
                        "with_arbitrage": self.teacher_with_arbitrage[s],
                    },
                    "teacher_revenue_ratio": self.teacher_revenue_ratio[s],
                }
                for s, (name, cascade) in enumerate(zip(self.students, self.cascades, strict=True))
            ],
            "k": self.k,
            "teacher_pass_at_k": self.teacher_pass_at_k,
            "fit": {"intercept": fit.intercept, "slope": fit.slope, "r_squared": fit.r_squared},
        }


def distillation(
    outcomes: Outcomes,
    teacher: str,
    students: Sequence[str],
    tokens: ArrayLike,
    scheme: Scheme = "paper",
    max_k: int = 100,
    levels: LevelBand | None = None,
) -> DistillationResult:
    """Pair each student with the teacher and measure the arbitrageur's margin, per checkpoint.

    Paper scheme: caps (τ1, total − τ1) on the distillation grid, τ1 maximising the margin
    averaged over the distillation levels (`distillation_levels`, or `levels`). Exact scheme:
    the cheapest cascade at each of the same levels.
    """
    students = tuple(students)
    tokens = np.asarray(tokens, dtype=float).ravel()
    _check(outcomes, teacher, students, tokens, scheme, max_k)
    results = [_pair(outcomes.select([student, teacher]), scheme, levels) for student in students]
    earned = [revenue(r) for r in results]
    k = np.arange(1, max_k + 1)
    curves = pass_at_k(outcomes.n[:, :, None], outcomes.s[:, :, None], k[None, None, :]).mean(axis=0)
    return DistillationResult(
        teacher=teacher,
        students=students,
        tokens=tokens,
        cost_unit=outcomes.unit,
        scheme=scheme,
        levels=np.stack([r.levels for r in results]),
        margin=np.stack([r.margin for r in results]),
        cascades=tuple(r.cascade_for(len(r.levels) - 1) for r in results),
        k=k,
        pass_at_k=curves[outcomes.provider_index(students)],
        teacher_pass_at_k=curves[outcomes.provider_index([teacher])[0]],
        teacher_alone=np.stack([r.provider_costs[1] for r in results]),
        teacher_without_arbitrage=np.stack([e.without[:, 1] for e in earned]),
        teacher_with_arbitrage=np.stack([e.with_arbitrage[:, 1] for e in earned]),
    )


def _pair(pair: Outcomes, scheme: Scheme, band: LevelBand | None) -> ArbitrageResult:
    """The (student, teacher) market's arbitrageur on the distillation levels."""
    settings = settings_for(pair)
    if scheme == "exact":
        best = best_solve_rate(pair, "exact")
        return search(pair, distillation_levels(pair, best, band), "exact")
    best = paper.best_solve_rate(pair, settings.distill_grid)
    levels = distillation_levels(pair, best, band)
    return paper.grid_search(pair, levels, settings.distill_caps(), "mean_margin", settings.distill_grid)


def _check(outcomes: Outcomes, teacher: str, students: tuple[str, ...], tokens: Array, scheme: str, max_k: int) -> None:
    check_scheme(scheme)
    if not students:
        raise AnalysisError("name at least one student checkpoint, e.g. --students 1.7b-84,1.7b-281")
    if teacher in students or len(set(students)) != len(students):
        raise AnalysisError(f"students must be distinct and differ from the teacher {teacher!r}: {', '.join(students)}")
    if len(tokens) != len(students):
        raise AnalysisError(
            f"give one token count per student: {len(students)} student(s) but {len(tokens)} token count(s)"
        )
    if not np.all(np.isfinite(tokens) & (tokens > 0)):
        raise AnalysisError(f"token counts must be positive numbers, got {', '.join(f'{t:g}' for t in tokens)}")
    if max_k < 1:
        raise AnalysisError(f"pass@k needs k >= 1, got a largest k of {max_k}")
    outcomes.provider_index([teacher, *students])


def _ratio(numerator: Array, denominator: Array) -> Array:
    """Per row: mean of the numerator over the mean of the denominator, over levels where both are finite."""
    ok = np.isfinite(numerator) & np.isfinite(denominator)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, numerator, 0.0).sum(axis=1) / np.where(ok, denominator, 0.0).sum(axis=1)
