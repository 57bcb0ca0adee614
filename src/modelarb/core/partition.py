"""The exact cascade search split into parts by first-stage provider, run on an executor, its hulls merged.

Part k searches only the cascades whose first stage is one of its providers (`exact_hull(first=…)`),
and runs as the whole search would (exhaustive, branch and bound or beam: chosen from the whole
space). A branch and bound's parts all start from the hull the whole search would start from, made
once (`warm_start`), so each closes boxes against the whole market's cascades, not only its own.
Every cascade starts with exactly one provider, so the lower convex hull of the parts'
hulls is the whole search's hull when every part is exhaustive or branch and bound. A beam keeps
its width per part, so a partitioned beam search explores more than the whole one and its hull may
differ from the whole beam's; never between executors, since the parts follow from the market
alone (never from the number of workers) and are merged in part order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from modelarb.core.exact import Orders, SearchHull, exact_hull, warm_start
from modelarb.core.polish import Candidates
from modelarb.core.result import ArbitrageResult
from modelarb.data.outcomes import Outcomes
from modelarb.errors import AnalysisError
from modelarb.parallel import Executor, in_order

DEFAULT_PARTS = 8  # parts of a partitioned search unless told otherwise (at most one per provider)


@dataclass(frozen=True)
class Partition:
    """How to split a search: into `parts` (None: `DEFAULT_PARTS`; at most one per provider), run by `executor`."""

    executor: Executor
    parts: int | None = None


@dataclass(frozen=True, eq=False)
class _SearchTask:
    """What every part shares: the market and the search's options."""

    outcomes: Outcomes
    orders: Orders
    beam_width: int | None
    max_depth: int | None
    branch: bool | None
    top: float
    start: tuple[Candidates, int] | None  # a branch and bound's shared start and its cascades (None: each its own)


def first_stage_parts(outcomes: Outcomes, parts: int) -> list[tuple[int, ...]]:
    """Provider columns in `parts` groups of first stages with about equal search work.

    A provider's weight is its number of steps (attempts that may succeed, Σ_i (n − s + 1) over
    instances with a success): each of its caps as a first stage roots as many cascades. Heaviest
    first, each goes to the lightest group (ties to the lowest group); columns sorted in each group.
    """
    if parts < 1:
        raise AnalysisError(f"a partitioned search needs at least one part, got {parts}")
    weight = np.where(outcomes.s > 0, outcomes.n - outcomes.s + 1, 0).sum(axis=0)
    groups: list[list[int]] = [[] for _ in range(min(parts, outcomes.n_providers))]
    load = np.zeros(len(groups), dtype=np.int64)
    for p in np.argsort(-weight, kind="stable").tolist():
        g = int(load.argmin())
        groups[g].append(p)
        load[g] += max(int(weight[p]), 1)
    return [tuple(sorted(group)) for group in groups]


def partitioned_hull(
    outcomes: Outcomes,
    partition: Partition,
    *,
    orders: Orders = None,
    beam_width: int | None = None,
    max_depth: int | None = None,
    branch: bool | None = None,
    top: float,
) -> SearchHull:
    """The merged hull of the parts' searches (options as `exact_search`; `top`, the highest level), with a
    `method` saying how."""
    groups = first_stage_parts(outcomes, partition.parts or DEFAULT_PARTS)
    shared = warm_start(outcomes, top=top, orders=orders, beam_width=beam_width, max_depth=max_depth, branch=branch)
    warming = shared[1] if shared is not None else 0
    task = _SearchTask(outcomes, orders, beam_width, max_depth, branch, top, shared)
    hulls = in_order(partition.executor, _search_part, task, [(group,) for group in groups])
    proven = all(h.proven for h in hulls)
    shared_note = f" (a shared start's {warming:,} included)" if shared is not None else ""
    method = (
        f"partitioned search: {len(groups)} parts by first-stage provider, "
        f"{warming + sum(h.evaluated for h in hulls):,} cascades evaluated in all{shared_note}, "
        f"lower convex hull of the parts' hulls "
        f"({'every part proven, so the optimum over every part' if proven else 'not exhaustive: a beam in some part'})"
        f"; part 1: {hulls[0].method}"
    )
    merged = SearchHull.union(hulls, method)
    return replace(merged, evaluated=merged.evaluated + warming)


def partitioned_search(
    outcomes: Outcomes,
    levels: NDArray[np.float64],
    partition: Partition,
    *,
    orders: Orders = None,
    beam_width: int | None = None,
    max_depth: int | None = None,
    branch: bool | None = None,
) -> ArbitrageResult:
    """`exact_search` split into parts by first-stage provider and run on `partition.executor`."""
    levels = np.asarray(levels, dtype=float)
    if levels.ndim != 1 or levels.size == 0:
        raise AnalysisError("give at least one target solve rate")
    found = partitioned_hull(
        outcomes,
        partition,
        orders=orders,
        beam_width=beam_width,
        max_depth=max_depth,
        branch=branch,
        top=float(levels.max()),
    )
    return found.result(outcomes, levels)


def _search_part(task: _SearchTask, first: tuple[int, ...]) -> SearchHull:
    """One part: the cascades whose first stage is one of `first`."""
    return exact_hull(
        task.outcomes,
        top=task.top,
        orders=task.orders,
        beam_width=task.beam_width,
        max_depth=task.max_depth,
        branch=task.branch,
        first=first,
        start=task.start,
    )
