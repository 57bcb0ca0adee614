"""Branch and bound over boxes of caps (METHOD §4): the proven hull of cascades of at most D stages.

A box fixes the providers of the first L = D − 1 stages and, for each, a range [a_m, b_m] of its caps
(indices into its `Breakpoints`, with 0 for no stage); the last stage is swept over every cap of every
provider it may use. A stage's unsolved chances F fall and its spend c·Σ F rises with its cap, so every
cascade of a box, with a given last stage, solves at most what the box's corner b does with it, and spends
at least the corner's spend less Δ = Σ_m Σ_i w_mi (C_m(b_m) − C_m(a_m))_i / I, w_m the corner's unsolved
chances before stage m. A box is closed for a last provider q (or for no last stage) when at each of q's
caps the corner's spend less Δ is at or above the target T at the corner's solve rate (`bounds.Target`,
read at a fine grid's next point, where it is no lower: T rises): closing there leaves C(u ≤ top) exact.

An open box is cut in two along the stage with the largest share of Δ. The upper part keeps the corner,
and so its sweep; the cut is put, where it can be, where the upper part closes (else halfway), and only the
lower part's new corner is swept. Corners are real cascades: those below the hull join it as they are met,
which only lowers T and keeps what is closed closed. A box of one cap per stage is exact.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from modelarb.core.bounds import CELLS, CLOSE_TOLERANCE, Target
from modelarb.core.exact_curves import Breakpoints, attempt_spend
from modelarb.core.hull import lower_hull
from modelarb.core.passk import FailureTable, attempts_within
from modelarb.core.polish import SWEEP_CELLS, Candidates, compacted
from modelarb.core.rows import Rows
from modelarb.data.outcomes import Outcomes

Array = NDArray[np.float64]
Index = NDArray[np.int64]

TABLE_CELLS = 20_000_000  # every provider's caps × instances: their stages' F and spend are made once if this fits
BOX_CELLS = 3_000_000_000  # it gives up once its sweeps and corners have read this many cells (10–30 s here)
HOPELESS_SPEED = 16  # a matrix product's multiply-adds (hopeless instances × caps) count as this many times fewer
TARGET_GRID = 2**16  # T read at the next of this many points per unit of solve rate


@dataclass(frozen=True, eq=False)
class _Stages:
    """Every provider's caps from 0 up (provider p's at `offset[p]` …; `offset[P]`: no stage, cap 0), and what a
    stage at one of them leaves unsolved and spends, per instance (`rows`): looked up in `table` (every cap's
    rows, made once where they fit in `TABLE_CELLS`) or made when asked."""

    offset: Index
    cap: Array
    cost: Array  # (P, I)
    tables: list[FailureTable]
    table: tuple[Array, Array] | None = None

    @classmethod
    def of(cls, outcomes: Outcomes, steps: list[Breakpoints], tables: list[FailureTable]) -> _Stages:
        caps = [np.append(0.0, s.caps) for s in steps]
        offset = np.cumsum([0] + [c.size for c in caps])
        stages = cls(offset, np.concatenate([*caps, np.zeros(1)]), outcomes.cost.T, tables)
        if stages.cap.size * outcomes.n_instances > TABLE_CELLS:
            return stages
        provider = np.repeat(np.arange(len(offset)), np.diff(np.append(offset, stages.cap.size)))
        return replace(stages, table=stages.rows(provider, np.arange(stages.cap.size) - offset[provider]))

    def rows(self, provider: Index, index: Index) -> tuple[Array, Array]:
        """What stages (provider, cap index) leave unsolved of each instance (R, I), and their mean spend per unit
        of unsolved chance."""
        if self.table is not None:
            row = self.offset[provider] + index
            return self.table[0][row], self.table[1][row]
        fail, spend = np.ones((len(provider), self.cost.shape[1])), np.zeros((len(provider), self.cost.shape[1]))
        for p in np.unique(provider[provider < len(self.cost)]).tolist():
            pick = np.flatnonzero(provider == p)
            k = attempts_within(self.cap[self.offset[p] + index[pick]][:, None], self.cost[p])
            fail[pick] = self.tables[p].at(k)
            spend[pick] = attempt_spend(self.cost[p], self.tables[p].attempts(k))
        return fail, spend / self.cost.shape[1]

    def spend(self, provider: Index, index: Index) -> Array:
        """The second of `rows` alone."""
        if self.table is not None:
            return self.table[1][self.offset[provider] + index]
        return self.rows(provider, index)[1]


@dataclass(frozen=True, eq=False)
class _Boxes(Rows):
    """Boxes: the first stages' providers (B, L) (P: none), cap index ranges lo … hi (B, L), which last stages
    are open (B, P + 1; column P: none), and the corner's margin min(spend − T(solve)) per last stage (NaN: not
    swept yet)."""

    seq: Index
    lo: Index
    hi: Index
    open: NDArray[np.bool_]
    margin: Array


def box_search(
    outcomes: Outcomes,
    steps: list[Breakpoints],
    tables: list[FailureTable],
    depth: int,
    admissible: Callable[[tuple[int, ...]], bool],
    start: Candidates,
    top: float,
    floor: float,
    sequences: set[tuple[int, ...]] | None = None,
    budget: float | None = None,
) -> tuple[Candidates, int, bool]:
    """The hull of `start` and of every cascade of at most `depth` stages whose provider sequence is
    `admissible` (sequences are closed under dropping stages) and, if given, one of `sequences` (also closed),
    proven as `bounds.Target` (`top`, `floor`) says; how many cascades were evaluated; and whether it gave up
    (its work past `budget` cells, by default `BOX_CELLS`): then the hull holds what was met."""
    n_p, n_inst = outcomes.n_providers, outcomes.n_instances
    budget = BOX_CELLS if budget is None else budget
    if sequences is None and math.perm(n_p, depth) * n_inst > budget:  # sweeping the first boxes would take more
        return start, 0, True
    width = depth - 1
    if sequences is None:
        candidates = (seq for size in range(width, 0, -1) for seq in itertools.permutations(range(n_p), size))
        boxes = _roots(steps, width, n_p, admissible, candidates)
    else:
        known = sorted({seq for seq in sequences if len(seq) <= width}, key=len, reverse=True)
        boxes = _roots(steps, width, n_p, lambda seq: admissible(seq) and seq in sequences, iter(known))
    if boxes.open.sum() * n_inst > budget:
        return start, 0, True
    table = _Stages.of(outcomes, steps, tables)
    hull, evaluated, work = start, 0, 0
    while len(boxes.seq):
        target = _upper(Target(hull.solve, hull.spend, top, floor))
        found: list[Candidates] = []
        parts: list[_Boxes] = []
        chunk = max(1, CELLS // max(n_inst, 1))
        for begin in range(0, len(boxes.seq), chunk):
            part = boxes.take(np.arange(begin, min(begin + chunk, len(boxes.seq))))
            corner = _Corner.of(table, part)
            fresh = np.flatnonzero(np.isnan(part.margin[:, 0]))
            swept, cells = _sweep(steps, table, part, corner, fresh, target, found)
            evaluated += swept
            work += cells + part.seq.size * n_inst  # the sweeps' cells, and the corners' stages
            parts.append(_split(steps, part, corner))
            if work > budget:
                return _joined_hull(hull, found), evaluated, True
        hull = _joined_hull(hull, found)
        boxes = _Boxes.joined(parts)
    return hull, evaluated, False


def _roots(
    steps: list[Breakpoints],
    width: int,
    n_p: int,
    admissible: Callable[[tuple[int, ...]], bool],
    candidates: Iterator[tuple[int, ...]],
) -> _Boxes:
    """A box of every cap per first `width` stages (the first stage at a cap above 0) for each admissible
    sequence of them among `candidates` (longest first), with the last stages it may take open: sequences as
    long as the depth, and shorter ones no admissible sequence extends (padded with none). A first provider
    with no caps starts no box: its cascades start with the next stage, in other boxes."""
    roots: dict[tuple[int, ...], set[int]] = {}
    prefixes: set[tuple[int, ...]] = set()
    for seq in candidates:
        if seq in prefixes or not admissible(seq) or steps[seq[0]].caps.size == 0:
            continue
        size = len(seq)
        roots[seq] = {q for q in range(n_p) if q not in seq and admissible((*seq, q))} if size == width else set()
        prefixes.update(seq[:k] for k in range(1, size))
    if width == 0:
        roots[()] = {q for q in range(n_p) if admissible((q,))}
    keys = list(roots)
    providers = np.full((len(keys), width), n_p, dtype=np.int64)
    hi = np.zeros((len(keys), width), dtype=np.int64)
    open_ = np.zeros((len(keys), n_p + 1), dtype=bool)
    open_[:, n_p] = True
    for row, key in enumerate(keys):
        providers[row, : len(key)] = key
        hi[row, : len(key)] = [steps[p].caps.size for p in key]
        open_[row, sorted(roots[key])] = True
    lo = np.zeros_like(hi)
    lo[:, :1] = np.minimum(hi[:, :1], 1)  # a first stage buys something: later starts are other roots
    return _Boxes(providers, lo, hi, open_, np.full(open_.shape, np.nan))


@dataclass(frozen=True, eq=False)
class _Corner:
    """Per box: its corner's solve and spend without a last stage, its unsolved chances (B, I), Δ's share of
    each stage (B, L), and what the stages before each leave unsolved (B, L, I)."""

    solve: Array
    spend: Array
    fail: Array
    delta: Array
    before: Array

    @classmethod
    def of(cls, table: _Stages, boxes: _Boxes) -> _Corner:
        n_b, width = boxes.seq.shape
        fail = np.ones((n_b, table.cost.shape[1]))
        spend, delta = np.zeros(n_b), np.zeros((n_b, width))
        before = np.empty((n_b, width, table.cost.shape[1]))
        for m in range(width):
            left, top = table.rows(boxes.seq[:, m], boxes.hi[:, m])
            bottom = table.spend(boxes.seq[:, m], boxes.lo[:, m])
            before[:, m] = fail
            spend += np.einsum("bi,bi->b", fail, top)
            delta[:, m] = np.einsum("bi,bi->b", fail, top - bottom)
            fail = fail * left
        return cls(1.0 - fail.mean(axis=1), spend, fail, delta, before)


def _sweep(
    steps: list[Breakpoints],
    table: _Stages,
    boxes: _Boxes,
    corner: _Corner,
    rows: Index,
    target: Callable[[Array], Array],
    found: list[Candidates],
) -> tuple[int, int]:
    """The margins of the corners of boxes `rows` (filled in `boxes.margin`), each open last stage swept; the
    cascades met at or below T join `found`. How many cascades that evaluated, and how many cells its sweeps read."""
    n_p, evaluated, cells = len(steps), len(rows), 0
    gap = corner.spend[rows] - target(corner.solve[rows])
    boxes.margin[rows, n_p] = gap
    _found(found, table, boxes, rows, gap <= 0, corner.solve[rows], corner.spend[rows], -1, np.zeros(1))
    for q, step in enumerate(steps):
        boxes.margin[rows, q] = np.inf
        every = rows[boxes.open[rows, q]]
        chunk = max(1, SWEEP_CELLS // max(step.instance.size, step.caps.size, 1))
        for mine in np.split(every, np.arange(chunk, every.size, chunk)) if every.size and step.caps.size else []:
            solve, spend = step.sweep(corner.fail[mine])
            cells += mine.size * (step.instance.size + step.hopeless.size * step.caps.size // HOPELESS_SPEED)
            solve += corner.solve[mine, None]
            spend += corner.spend[mine, None]
            gap = spend - target(solve)
            evaluated += gap.size
            boxes.margin[mine, q] = gap.min(axis=1, initial=np.inf)
            below = gap <= 0
            if below.any():
                _found(found, table, boxes, mine, below, solve, spend, q, step.caps)
    return evaluated, cells


def _found(
    found: list[Candidates],
    table: _Stages,
    boxes: _Boxes,
    rows: Index,
    below: NDArray[np.bool_],
    solve: Array,
    spend: Array,
    q: int,
    caps: Array,
) -> None:
    """The corners' cascades of boxes `rows` whose points `below` ((R,) or (R, G): with q's caps) reach T."""
    hit = np.flatnonzero(below.ravel())
    if hit.size == 0:
        return
    r, g = np.divmod(hit, below.shape[1]) if below.ndim == 2 else (hit, np.zeros_like(hit))
    seq, top = boxes.seq[rows[r]], boxes.hi[rows[r]]
    used = top > 0
    stages = np.column_stack([np.where(used, seq, -1), np.full(hit.size, q)])
    caps = np.column_stack([np.where(used, table.cap[table.offset[seq] + top], 0.0), caps[g]])
    found.append(compacted(solve.ravel()[hit], spend.ravel()[hit], stages, caps))


def _split(steps: list[Breakpoints], boxes: _Boxes, corner: _Corner) -> _Boxes:
    """The open boxes, each cut in two (see the module); closed boxes and exact ones are dropped."""
    slack = boxes.margin - corner.delta.sum(axis=1)[:, None]
    still = boxes.open & (slack < -CLOSE_TOLERANCE * np.maximum(np.abs(corner.spend), 1e-300)[:, None])
    wide = boxes.hi > boxes.lo
    cut = np.flatnonzero(still.any(axis=1) & wide.any(axis=1))
    if cut.size == 0:
        return boxes.take(cut)
    boxes = _Boxes(boxes.seq, boxes.lo, boxes.hi, still, boxes.margin)
    share = np.where(wide[cut], corner.delta[cut], -np.inf)
    stage = share.argmax(axis=1)
    lo, hi = boxes.lo[cut, stage], boxes.hi[cut, stage]
    at = (lo + hi) // 2 + 1  # the upper part's first cap index
    room = np.where(still[cut], boxes.margin[cut], np.inf).min(axis=1) - (
        corner.delta[cut].sum(axis=1) - share.max(axis=1)
    )
    for m in range(boxes.seq.shape[1]):  # where the upper part can close: its cut, if it keeps at least half
        chosen = np.flatnonzero((stage == m) & (room > 0))  # never a padded stage: those are not wide
        for p in np.unique(boxes.seq[cut[chosen], m]).tolist():
            every = chosen[boxes.seq[cut[chosen], m] == p]
            chunk = max(1, SWEEP_CELLS // max(steps[p].instance.size, 1))
            for pick in np.split(every, np.arange(chunk, every.size, chunk)):
                _, spent = steps[p].sweep(corner.before[cut[pick], m])
                spent = np.hstack([np.zeros((pick.size, 1)), spent])
                need = spent[np.arange(pick.size), hi[pick]] - room[pick]
                index = np.arange(spent.shape[1])
                first = np.argmax((spent >= need[:, None]) & (index > lo[pick, None]), axis=1)
                keeps = (hi[pick] - first + 1) * 2 >= hi[pick] - lo[pick] + 1
                at[pick] = np.where(keeps & (first > lo[pick]), first, at[pick])
    lower, upper = boxes.take(cut), boxes.take(cut)
    lower.hi[np.arange(cut.size), stage] = at - 1
    lower.margin[:] = np.nan
    upper.lo[np.arange(cut.size), stage] = at
    return _Boxes.joined([lower, upper])


def _upper(target: Target) -> Callable[[Array], Array]:
    """T read at the next of `TARGET_GRID` points per unit of solve rate (no lower: T rises)."""
    grid = target.at(np.linspace(0.0, 1.0, TARGET_GRID + 1))

    def at(solve: Array) -> Array:
        index = np.clip(np.ceil(solve * TARGET_GRID - 1e-9), 0, TARGET_GRID).astype(np.int64)
        return grid[index]

    return at


def _joined_hull(hull: Candidates, found: list[Candidates]) -> Candidates:
    """The lower hull of `hull` and the cascades found."""
    if not found:
        return hull
    grown = Candidates.joined([hull, *found])
    return grown.take(lower_hull(grown.solve, grown.spend))
