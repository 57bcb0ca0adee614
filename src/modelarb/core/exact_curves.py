"""Exact curves (METHOD §3–4): single providers at any cap or attempt count, cascades instance by instance.

No budget grid: a cap b buys k = floor(b / c_ip) attempts, and solve rate and expected
spend follow from F_ip(k) and the expected number of attempts Σ_{j<k} F_ip(j).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike, NDArray

from modelarb.core.cascade import Cascade
from modelarb.core.hull import hull_cost, lower_hull
from modelarb.core.passk import FailureTable, attempts_within, failure_probability
from modelarb.data.outcomes import Outcomes

Array = NDArray[np.float64]
Index = NDArray[np.int64]

GROUP_TOLERANCE = 2e-12  # caps closer than this (relative) buy the same attempts (see `attempts_within`)
CHUNK_CELLS = 4_000_000  # cascades × instances evaluated at once


def failure_and_attempts(n: ArrayLike, s: ArrayLike, k: ArrayLike) -> tuple[Array, Array]:
    """F(k), and Σ_{j<k} F(j): the attempts bought when at most k are allowed and buying stops at the first
    success.

    For s > 0, with f = n − s: Σ_{j<k} C(f, j) / C(n, j) = (n + 1) / (s + 1) · (1 − C(f, k) / C(n + 1, k))
    and C(f, k) / C(n + 1, k) = F(k) · (n + 1 − k) / (n + 1). Every attempt fails when s = 0: then it is k.
    """
    n_, s_, k_ = np.broadcast_arrays(np.asarray(n, float), np.asarray(s, float), np.asarray(k, float))
    fail = failure_probability(n_, s_, k_)
    with np.errstate(invalid="ignore"):
        left = np.where(fail > 0, fail * (n_ + 1 - k_), 0.0)
    return fail, np.where(s_ > 0, (n_ + 1 - left) / (s_ + 1), k_)


def attempt_spend(cost: ArrayLike, attempts: ArrayLike) -> Array:
    """c · expected attempts (free attempts cost nothing, however many)."""
    cost_ = np.asarray(cost, float)
    with np.errstate(invalid="ignore"):
        return np.where(cost_ > 0, cost_ * np.asarray(attempts, float), 0.0)


def provider_curves(outcomes: Outcomes, caps: ArrayLike) -> tuple[Array, Array]:
    """P_p(b) and E_p(b) of each provider (P, B) at caps b: k_ip(b) = floor(b / c_ip) attempts."""
    k = attempts_within(np.asarray(caps, float)[None, None, :], outcomes.cost[:, :, None])
    fail, attempts = failure_and_attempts(outcomes.n[:, :, None], outcomes.s[:, :, None], k)
    return (1.0 - fail).mean(axis=0), attempt_spend(outcomes.cost[:, :, None], attempts).mean(axis=0)


@dataclass(frozen=True, eq=False)
class Breakpoints:
    """The caps at which a provider's attempt counts change usefully, and what each change brings.

    Step (i, k) is the k-th attempt on instance i, bought from cap k · c_i on: it adds
    (F_i(k−1) − F_i(k)) / I to the mean solve rate and c_i · F_i(k−1) / I to the mean spend.
    Only instances with a success count, and only up to k = n − s + 1 (then F = 0); a cap
    between two such steps buys what the lower one buys plus attempts that never succeed.
    Steps are sorted by cap; steps whose caps coincide form one group, bought by the cap
    `caps[g]`; group g ends after step `ends[g]`. Instances without a success (`hopeless`)
    cost c_i · floor(b / c_i) at every cap b.
    """

    caps: Array
    ends: Index
    instance: Index
    solve_gain: Array
    spend_gain: Array
    hopeless: Index
    hopeless_cost: Array
    n_instances: int

    @classmethod
    def of(cls, outcomes: Outcomes, provider: int, table: FailureTable | None = None) -> Breakpoints:
        """The breakpoints of one provider (`table`: its failure table, if already made)."""
        n, s, c = outcomes.n[:, provider], outcomes.s[:, provider], outcomes.cost[:, provider]
        table = table or FailureTable(n, s)
        counts = np.where(s > 0, n - s + 1, 0)
        instance = np.repeat(np.arange(len(n)), counts)
        k = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts) + 1
        caps = k * c[instance]
        order = np.argsort(caps, kind="stable")
        instance, k, caps = instance[order], k[order], caps[order]
        at = table.start[instance] + k
        before = table.values[at - 1] / len(n)
        gain = before - table.values[at] / len(n)
        last = np.append(caps[1:] > caps[:-1] * (1 + GROUP_TOLERANCE), True) if len(caps) else np.zeros(0, bool)
        ends = np.flatnonzero(last)
        group_caps = caps[ends]
        if len(group_caps) and group_caps[0] == 0:  # free attempts: any cap buying no paid attempt buys them
            group_caps[0] = 0.5 * c[c > 0].min() if np.any(c > 0) else 1.0
        hopeless = np.flatnonzero((s == 0) & (c > 0))
        return cls(group_caps, ends, instance, gain, c[instance] * before, hopeless, c[hopeless], len(n))

    @cached_property
    def wasted(self) -> Array:
        """Mean spend (H, G) on each hopeless instance at each group's cap."""
        cost = self.hopeless_cost[:, None]
        return cost * attempts_within(self.caps[None, :], cost) / self.n_instances

    def sweep(self, fail: Array) -> tuple[Array, Array]:
        """Mean solve and spend gained at every group's cap (K, G) after prefixes that leave instance i
        unsolved with probability `fail[k, i]`: running sums of the steps' gains weighted by it."""
        solve = np.take(fail, self.instance, axis=1)  # row-major, unlike fail[:, instance]
        spend = solve * self.spend_gain
        np.multiply(solve, self.solve_gain, out=solve)
        np.cumsum(solve, axis=1, out=solve)
        np.cumsum(spend, axis=1, out=spend)
        if self.ends.size < self.instance.size:
            solve, spend = np.take(solve, self.ends, axis=1), np.take(spend, self.ends, axis=1)
        if self.hopeless.size:
            spend += np.take(fail, self.hopeless, axis=1) @ self.wasted
        return solve, spend


def provider_hull(outcomes: Outcomes, provider: int) -> tuple[Array, Array, Array]:
    """Vertices (solve, spend, cap) of C_p's hull over every cap, from the cap 0 at (0, 0)."""
    steps = Breakpoints.of(outcomes, provider)
    solve, spend = steps.sweep(np.ones((1, outcomes.n_instances)))
    solve, spend = np.append(0.0, solve[0]), np.append(0.0, spend[0])
    caps = np.append(0.0, steps.caps)
    vertices = lower_hull(solve, spend)
    return solve[vertices], spend[vertices], caps[vertices]


def provider_cost_curves(outcomes: Outcomes, levels: Array) -> Array:
    """C_p(u) of each provider alone (P, U), exactly: its lower convex hull over all caps."""
    rows = []
    for p in range(outcomes.n_providers):
        solve, spend, _ = provider_hull(outcomes, p)
        rows.append(hull_cost(solve, spend, levels))
    return np.array(rows).reshape(outcomes.n_providers, len(levels))


@dataclass(frozen=True, eq=False)
class CascadeValues:
    """Mean solve rate (K,), mean spend (K,) and mean spend on each stage (K, M) of K cascades."""

    solve: Array
    spend: Array
    stage_spend: Array


def cascade_instances(outcomes: Outcomes, order: Sequence[int], caps: Array) -> tuple[Array, Array]:
    """Per-instance solve chance (K, I) and spend on each stage (K, M, I) of cascades over `order` (METHOD §4).

    solve_i = 1 − Π_m F_m(k_m); stage m spends c_m · Σ_{j<k_m} F_m(j) on the instances
    the stages before it left unsolved, Π_{m'<m} F_m'(k_m').
    """
    n_cascades, n_inst = caps.shape[0], outcomes.n_instances
    unsolved = np.ones((n_cascades, n_inst))
    stage_spend = np.empty((n_cascades, len(order), n_inst))
    for m, p in enumerate(order):
        n, s, c = outcomes.n[:, p], outcomes.s[:, p], outcomes.cost[:, p]
        fail, attempts = failure_and_attempts(n, s, attempts_within(caps[:, m : m + 1], c[None, :]))
        stage_spend[:, m] = unsolved * attempt_spend(c, attempts)
        unsolved = unsolved * fail
    return 1.0 - unsolved, stage_spend


def evaluate_cascades(outcomes: Outcomes, order: Sequence[str], caps: ArrayLike) -> CascadeValues:
    """Exact mean solve rate and spend of cascades with providers `order` and caps (K, M), evaluated
    instance by instance and then averaged."""
    caps_ = np.atleast_2d(np.asarray(caps, float))
    columns = outcomes.provider_index(order)
    step = max(1, CHUNK_CELLS // (outcomes.n_instances * max(len(columns), 1)))
    parts = []
    for start in range(0, len(caps_), step):
        solve, spend = cascade_instances(outcomes, columns, caps_[start : start + step])
        parts.append((solve.mean(axis=1), spend.mean(axis=2)))
    stage = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, len(columns)))
    solve_ = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0)
    return CascadeValues(solve_, stage.sum(axis=1), stage)


def evaluate(outcomes: Outcomes, cascades: Sequence[Cascade]) -> CascadeValues:
    """Exact values of cascades of any orders; `stage_spend` is per market provider (K, P)."""
    solve, spend = np.zeros(len(cascades)), np.zeros(len(cascades))
    by_provider = np.zeros((len(cascades), outcomes.n_providers))
    groups: dict[tuple[str, ...], list[int]] = {}
    for k, cascade in enumerate(cascades):
        groups.setdefault(cascade.providers, []).append(k)
    for order, rows in groups.items():
        values = evaluate_cascades(outcomes, order, np.array([cascades[k].caps for k in rows]).reshape(len(rows), -1))
        solve[rows], spend[rows] = values.solve, values.spend
        for m, column in enumerate(outcomes.provider_index(order)):
            by_provider[rows, column] += values.stage_spend[:, m]
    return CascadeValues(solve, spend, by_provider)
