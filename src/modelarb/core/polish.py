"""Polishing a hull of cascades: each vertex's stages chosen again one at a time (coordinate descent, exact caps).

Take a cascade and one stage position m. The stages before m leave instance i unsolved with
chance w_i; the stages after m, given a unit of unsolved chance on i, leave `after_fail` of it
unsolved and spend `after_spend` on it. Putting provider q at m with each of its caps is then one
sweep of q's breakpoints (`stage_sweep`), and so is leaving position m empty (the stage dropped)
or, in a cascade shorter than the depth, inserting a stage there. Every point so made is a real
cascade, evaluated exactly; those below the hull join it, and rounds repeat while new vertices
come. The branch and bound starts from a polished beam's hull (`exact`): the lower it is, the more it closes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from modelarb.core.exact_curves import Breakpoints, attempt_spend, failure_and_attempts
from modelarb.core.hull import lower_hull
from modelarb.core.passk import attempts_within
from modelarb.core.rows import Rows
from modelarb.data.outcomes import Outcomes

Array = NDArray[np.float64]
Index = NDArray[np.int64]

POLISH_ROUNDS = 20  # at most this many rounds (each re-chooses every stage of each new vertex once)
SWEEP_CELLS = 2_000_000  # vertices × steps of one sweep


@dataclass(frozen=True, eq=False)
class Candidates(Rows):
    """Cascades as (solve, spend, stages (n, D) with -1 pads, caps (n, D))."""

    solve: Array
    spend: Array
    stages: Index
    caps: Array


def stage_sweep(step: Breakpoints, fail: Array, after_fail: Array, after_spend: Array) -> tuple[Array, Array]:
    """Mean solve and spend (K, G) of a stage of `step`'s provider at every group's cap, between earlier stages
    leaving `fail` (K, I) unsolved and later ones that leave `after_fail` (K, I) of a unit of unsolved chance
    unsolved and spend `after_spend` (K, I) on it.

    A step (i, k) moves F_i(k − 1) to F_i(k): the later stages see that much less of instance i, so it adds
    w_i F_after,i (F(k − 1) − F(k)) to the solve rate and w_i (c_i F(k − 1) − (F(k − 1) − F(k)) e_after,i) to
    the spend.
    """
    base_solve, base_spend = _without(fail, after_fail, after_spend)
    weight = np.take(fail, step.instance, axis=1)
    solve = weight * np.take(after_fail, step.instance, axis=1) * step.solve_gain
    spend = weight * (step.spend_gain - np.take(after_spend, step.instance, axis=1) * step.solve_gain)
    solve, spend = np.cumsum(solve, axis=1)[:, step.ends], np.cumsum(spend, axis=1)[:, step.ends]
    if step.hopeless.size:
        spend += np.take(fail, step.hopeless, axis=1) @ step.wasted
    return solve + base_solve[:, None], spend + base_spend[:, None]


def _without(fail: Array, after_fail: Array, after_spend: Array) -> tuple[Array, Array]:
    """Mean solve and spend (K,) with no stage between the earlier and the later stages."""
    n = fail.shape[1]
    return (fail * (1.0 - after_fail)).sum(axis=1) / n, (fail * after_spend).sum(axis=1) / n


def _stage_effect(outcomes: Outcomes, providers: Index, caps: Array) -> tuple[Array, Array]:
    """Per row and instance (K, I): the unsolved share a stage (provider, cap) leaves, and its spend per unit of
    unsolved chance (-1 providers: no stage, 1 and 0)."""
    live = providers >= 0
    column = np.where(live, providers, 0)
    cost = outcomes.cost.T[column]
    k = attempts_within(np.where(live, caps, 0.0)[:, None], cost)
    fail, attempts = failure_and_attempts(outcomes.n.T[column], outcomes.s.T[column], k)
    return np.where(live[:, None], fail, 1.0), np.where(live[:, None], attempt_spend(cost, attempts), 0.0)


def polished(
    outcomes: Outcomes,
    steps: list[Breakpoints],
    hull: Candidates,
    admissible: Callable[[tuple[int, ...]], bool],
    moves: bool = False,
    budget: float = np.inf,
) -> tuple[Candidates, int]:
    """The hull of `hull`'s cascades and every cascade made from a vertex by choosing one stage again (its
    provider and cap, or none, or a new stage where the vertex is shorter than `hull.stages` is wide; with
    `moves`, also a stage taken out and one chosen again in another place, which reorders stages), round
    after round while new vertices come (a vertex is polished once: what it leads to stays above later hulls
    unless it is on them); and how many cascades were evaluated. `admissible`: which provider sequences may be
    searched. Past `budget` cascades evaluated, no further stage position is polished (the round ends)."""
    evaluated, polished_once = 0, set[bytes]()
    width = hull.stages.shape[1]
    for _ in range(POLISH_ROUNDS):
        keys = [hull.stages[k].tobytes() + hull.caps[k].tobytes() for k in range(len(hull.solve))]
        fresh = [k for k, key in enumerate(keys) if key not in polished_once]
        if not fresh:
            break
        polished_once.update(keys[k] for k in fresh)
        made = [hull]
        for m in range(width):
            if evaluated >= budget:
                break
            for stages, caps, cleared in _variants(hull.take(np.array(fresh)), m, moves):
                solve_before, spend_before, fail, after_fail, after_spend = _around(outcomes, stages, caps, m)
                sequences = stages.tolist()
                if cleared:  # the stage dropped, where that sequence may be searched
                    keep = np.flatnonzero([admissible(_with(seq, m, -1)) for seq in sequences])
                    solve, spend = _without(fail[keep], after_fail[keep], after_spend[keep])
                    made.append(
                        compacted(solve_before[keep] + solve, spend_before[keep] + spend, stages[keep], caps[keep])
                    )
                for q, step in enumerate(steps):
                    rows = np.flatnonzero([q not in seq and admissible(_with(seq, m, q)) for seq in sequences])
                    chunk = max(1, SWEEP_CELLS // max(step.instance.size, step.caps.size, 1))
                    for part in (
                        np.split(rows, np.arange(chunk, rows.size, chunk)) if rows.size and step.caps.size else []
                    ):
                        solve, spend = stage_sweep(step, fail[part], after_fail[part], after_spend[part])
                        evaluated += solve.size
                        solve += solve_before[part, None]
                        spend += spend_before[part, None]
                        below = spend <= np.interp(solve, hull.solve, hull.spend, right=np.inf)  # may join the hull
                        made.append(_points(solve, spend, below, stages[part], caps[part], m, q, step.caps))
        grown = Candidates.joined(made)
        hull = grown.take(lower_hull(grown.solve, grown.spend))
    return hull, evaluated


def _variants(hull: Candidates, m: int, moves: bool) -> list[tuple[Index, Array, bool]]:
    """The vertices with stage m cleared (to be chosen again; True), and, for vertices shorter than the width,
    with an empty stage inserted at m (False), and with `moves`, with another stage taken out and an empty one
    inserted at m (False); vertices with no stage at m (nor before it) are left out."""
    length = (hull.stages >= 0).sum(axis=1)
    out = []
    own = np.flatnonzero(length > m)
    if own.size:
        stages, caps = hull.stages[own].copy(), hull.caps[own].copy()
        stages[:, m], caps[:, m] = -1, 0.0
        out.append((stages, caps, True))
    short = np.flatnonzero((length >= m) & (length < hull.stages.shape[1]))
    if short.size:
        stages = np.insert(hull.stages[short], m, -1, axis=1)[:, :-1]
        caps = np.insert(hull.caps[short], m, 0.0, axis=1)[:, :-1]
        out.append((stages, caps, False))
    for j in range(hull.stages.shape[1] if moves else 0):  # stage j taken out, an empty stage put at m
        moved = np.flatnonzero((length > j) & (length > m)) if j != m else np.zeros(0, np.int64)
        if moved.size:
            stages = np.insert(np.delete(hull.stages[moved], j, axis=1), m, -1, axis=1)
            caps = np.insert(np.delete(hull.caps[moved], j, axis=1), m, 0.0, axis=1)
            out.append((stages, caps, False))
    return out


def _around(outcomes: Outcomes, stages: Index, caps: Array, m: int) -> tuple[Array, Array, Array, Array, Array]:
    """The mean solve and spend (K,) of the stages before m and what they leave unsolved (K, I), and what the
    stages after m leave unsolved of a unit of unsolved chance and spend on it (K, I each)."""
    n_rows = len(stages)
    fail = np.ones((n_rows, outcomes.n_instances))
    spend = np.zeros(n_rows)
    for j in range(m):
        left, spent = _stage_effect(outcomes, stages[:, j], caps[:, j])
        spend += (fail * spent).mean(axis=1)
        fail *= left
    after_fail, after_spend = np.ones_like(fail), np.zeros_like(fail)
    for j in range(stages.shape[1] - 1, m, -1):
        left, spent = _stage_effect(outcomes, stages[:, j], caps[:, j])
        after_spend = spent + left * after_spend
        after_fail *= left
    return 1.0 - fail.mean(axis=1), spend, fail, after_fail, after_spend


def _with(seq: list[int], m: int, q: int) -> tuple[int, ...]:
    """The provider sequence with q at position m (other -1 pads dropped)."""
    filled = list(seq)
    filled[m] = q
    return tuple(p for p in filled if p >= 0)


def _points(
    solve: Array, spend: Array, below: NDArray[np.bool_], stages: Index, caps: Array, m: int, q: int, cap_values: Array
) -> Candidates:
    """The cascades of a (K, G) stage sweep that are `below`: q at position m with their caps."""
    rows, column = np.nonzero(below)
    new_stages, new_caps = stages[rows], caps[rows]
    new_stages[:, m], new_caps[:, m] = q, cap_values[column]
    return Candidates(solve[rows, column], spend[rows, column], new_stages, new_caps)


def compacted(solve: Array, spend: Array, stages: Index, caps: Array) -> Candidates:
    """The cascades with their empty stages (-1) left out, later stages moved up, and their solve and spend."""
    order = np.argsort(stages < 0, axis=1, kind="stable")  # stages first, pads last
    return Candidates(solve, spend, np.take_along_axis(stages, order, axis=1), np.take_along_axis(caps, order, axis=1))
