"""How a plan's caps are applied live, and what the plan is expected to do when served that way.

The model prices an attempt of provider p on instance i at c_ip, known in advance. Live, an
attempt's cost is known only afterwards, so the broker applies the cap rule
`expected-attempt-fits`: at stage m (provider p, cap τ_m) it starts another attempt while
spent_m + ĉ_p ≤ τ_m, with ĉ_p the mean cost of this task's earlier attempts of p, or before
the first one the plan's `attempt_cost[p]` (a). Every call is also limited so that its worst
case fits what remains of τ_m; an attempt that would cost more is cut short: it costs what
remained and does not solve. With true cost c = c_ip an instance's stage therefore buys
 - nothing, if a > τ_m;
 - floor(τ_m / c) attempts, as the model does, if c ≤ τ_m;
 - one truncated attempt costing τ_m, unsolved, if a ≤ τ_m < c.

Caps are placed mid-way between breakpoints (`midpoint_caps`) so that rounding a cap (to
micro-units, say) never changes what it buys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from modelarb.core.cascade import Cascade
from modelarb.core.exact_curves import attempt_spend, failure_and_attempts
from modelarb.core.passk import attempts_within
from modelarb.data.outcomes import Outcomes
from modelarb.errors import AnalysisError

Array = NDArray[np.float64]

ON_LAST_BREAKPOINT = 1e-6  # a cap above every breakpoint but sitting on the last one is raised by this (relative)


@dataclass(frozen=True)
class CapRule:
    """The rule a broker applies to a plan's caps: `name`, where the caps sit (`caps`), and the rule in words."""

    name: str
    caps: str
    text: str


CAP_RULE = CapRule(
    name="expected-attempt-fits",
    caps="interval-midpoint",
    text=(
        "At stage m (provider p, cap tau_m) start another attempt of p while spent_m + c_hat_p <= tau_m, where "
        "c_hat_p is the mean cost of this task's earlier attempts of p, or, before the first one, the plan's "
        "attempt_cost[p] (the mean cost per attempt of p over the instances the plan was fitted on). Every call "
        "reserves its worst-case cost and its max_tokens is lowered so that the worst case fits tau_m - spent_m; "
        "an attempt that would cost more than what remains is cut short: it costs what remained and does not "
        "solve, and the stage ends. Each cap lies mid-way between the caps at which the attempts it buys on the "
        "fitted instances would change, so rounding it changes nothing."
    ),
)


class LiveFigures(NamedTuple):
    """Expected solve rate and spend per task (total and per market provider) when served under `CAP_RULE`."""

    solve_rate: float
    spend: float
    spend_by_provider: tuple[float, ...]


def attempt_costs(outcomes: Outcomes) -> dict[str, float]:
    """Mean cost per attempt of each provider over the instances with a recorded attempt (its `attempt_cost`)."""
    recorded = outcomes.n > 0
    total = np.where(recorded, outcomes.cost, 0.0).sum(axis=0)
    count = recorded.sum(axis=0)
    if np.any(count == 0):
        missing = [p for p, k in zip(outcomes.providers, count, strict=True) if k == 0]
        raise AnalysisError(f"no recorded attempt of {', '.join(missing)}: its cost per attempt is unknown")
    return {p: float(v) for p, v in zip(outcomes.providers, total / count, strict=True)}


def _first_estimates(cascade: Cascade, attempt_cost: Mapping[str, float]) -> list[float]:
    missing = sorted(set(cascade.providers) - set(attempt_cost))
    if missing:
        raise AnalysisError(f"no attempt cost for {', '.join(missing)}: the cap rule needs one per provider")
    return [float(attempt_cost[p]) for p in cascade.providers]


def cap_interval(
    n: NDArray[np.int64], s: NDArray[np.int64], cost: Array, cap: float, first_estimate: float
) -> tuple[float, float]:
    """[lo, hi): the caps that buy what `cap` buys on every instance of one provider, live as in the model.

    Breakpoints are k · c_i for the attempts k that change something: up to n − s + 1 when
    s > 0 (then F = 0), every k when s = 0 (each attempt adds its cost); and the first-attempt
    estimate a, which decides whether the stage starts at all. hi is ∞ above every breakpoint.
    """
    paid = cost > 0
    unit = np.where(paid, cost, 1.0)
    k = np.where(paid, attempts_within(cap, unit), 0.0)
    useful = np.where(s > 0, n - s + 1, np.inf)
    below = np.where(paid & (k >= 1), np.minimum(k, useful) * unit, 0.0)
    above = np.where(paid & (k + 1 <= useful), (k + 1) * unit, np.inf)
    lo, hi = float(below.max(initial=0.0)), float(above.min(initial=np.inf))
    if first_estimate <= cap:
        lo = max(lo, first_estimate)
    else:
        hi = min(hi, first_estimate)
    return lo, hi


def midpoint_caps(outcomes: Outcomes, cascade: Cascade, attempt_cost: Mapping[str, float]) -> Cascade:
    """The cascade with each cap moved to the middle of its `cap_interval` (zero caps stay zero).

    Above the last breakpoint the cap is kept, raised by ON_LAST_BREAKPOINT (relative) only if
    it sits on that breakpoint. Model and live figures on `outcomes` are unchanged.
    """
    estimates = _first_estimates(cascade, attempt_cost)
    caps = []
    for column, cap, estimate in zip(outcomes.provider_index(cascade.providers), cascade.caps, estimates, strict=True):
        if cap == 0:
            caps.append(0.0)
            continue
        lo, hi = cap_interval(outcomes.n[:, column], outcomes.s[:, column], outcomes.cost[:, column], cap, estimate)
        caps.append(0.5 * (lo + hi) if np.isfinite(hi) else max(cap, lo * (1 + ON_LAST_BREAKPOINT)))
    return Cascade(cascade.providers, tuple(caps))


def live_instances(outcomes: Outcomes, cascade: Cascade, attempt_cost: Mapping[str, float]) -> tuple[Array, Array]:
    """Per-instance solve chance (I,) and spend on each stage (M, I) of a cascade served under `CAP_RULE`.

    As the model (`cascade_instances`), except that a stage whose first-attempt estimate
    exceeds its cap buys nothing, and on an instance whose attempt cost exceeds the cap the
    stage spends the whole cap on one truncated attempt and solves nothing.
    """
    estimates = _first_estimates(cascade, attempt_cost)
    unsolved = np.ones(outcomes.n_instances)
    stage_spend = np.zeros((len(cascade.providers), outcomes.n_instances))
    columns = outcomes.provider_index(cascade.providers)
    for m, (p, cap, estimate) in enumerate(zip(columns, cascade.caps, estimates, strict=True)):
        if estimate > cap:
            continue
        n, s, c = outcomes.n[:, p], outcomes.s[:, p], outcomes.cost[:, p]
        k = attempts_within(cap, c)
        fail, attempts = failure_and_attempts(n, s, k)
        truncated = (k == 0) & (c > 0)
        stage_spend[m] = unsolved * np.where(truncated, cap, attempt_spend(c, attempts))
        unsolved = unsolved * fail
    return 1.0 - unsolved, stage_spend


def live_figures(outcomes: Outcomes, cascade: Cascade, attempt_cost: Mapping[str, float]) -> LiveFigures:
    """Exact expected solve rate and spend per task of a cascade served under `CAP_RULE` on `outcomes`."""
    solve, stage_spend = live_instances(outcomes, cascade, attempt_cost)
    by_provider = np.zeros(outcomes.n_providers)
    np.add.at(by_provider, outcomes.provider_index(cascade.providers), stage_spend.mean(axis=1))
    return LiveFigures(float(solve.mean()), float(by_provider.sum()), tuple(float(v) for v in by_provider))


def mixed_live_figures(
    outcomes: Outcomes, cascades: Sequence[Cascade], weights: Sequence[float], attempt_cost: Mapping[str, float]
) -> LiveFigures:
    """`live_figures` of a plan that serves `cascades[c]` to a share `weights[c]` of the tasks."""
    parts = [live_figures(outcomes, c, attempt_cost) for c in cascades]
    share = np.asarray(weights, float)
    solve, spend = share @ [f.solve_rate for f in parts], share @ [f.spend for f in parts]
    by_provider = share @ np.array([f.spend_by_provider for f in parts]).reshape(len(parts), outcomes.n_providers)
    return LiveFigures(float(solve), float(spend), tuple(float(v) for v in by_provider))
