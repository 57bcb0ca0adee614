"""Fit samples (METHOD §6): costs until a provider's first verified success, bought until a budget is spent.

One draw picks an instance of the fit domain at random and, for each provider, samples
the cost until its first success from the instance's pass curve P(b): solved within the
censoring cap x with probability P(x), at the cost where P(b) reaches a uniform draw
(inverse CDF, linear in log b); otherwise censored at x. The paper uses one uniform for
all providers of a draw, so their costs are comonotone given the instance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, cast

import numpy as np
from numpy.typing import NDArray

from modelarb.core.grid import interpolate_log
from modelarb.errors import AnalysisError

Array = NDArray[np.float64]
Accounting = Literal["paper", "strict"]
ACCOUNTINGS: tuple[Accounting, ...] = ("paper", "strict")
CHUNK = 512  # draws per batch: fixed, so a smaller budget's sample is a prefix of a larger one's


def draw_cost(costs: Array, accounting: Accounting) -> Array:
    """What each draw (rows of `costs`, one column per provider) is charged against the fit budget.

    `paper`: the second provider's sampled cost, as the paper does; `strict`: the sum over providers.
    """
    if accounting == "paper":
        return costs[:, 1]
    if accounting == "strict":
        return costs.sum(axis=1)
    raise AnalysisError(f"unknown accounting {accounting!r}; use one of {', '.join(ACCOUNTINGS)}")


@dataclass(frozen=True, eq=False)
class FitSampler:
    """Draws fit samples from per-instance pass curves (instances, providers, budgets) of a fit domain.

    With `shared_uniform` one uniform per draw serves all providers (the paper's sampling);
    otherwise each provider gets its own.
    """

    curves: Array
    budgets: Array
    censor_at: float = 0.5
    shared_uniform: bool = True
    _flat: Array = field(init=False, repr=False)
    _solved_within: Array = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.curves.shape[1] < 2:
            raise AnalysisError("a fit sample needs at least two providers")
        monotone = np.maximum.accumulate(self.curves, axis=-1)
        rows = np.arange(monotone.shape[0] * monotone.shape[1]).reshape(monotone.shape[:2])
        # every row is monotone in [0, 1]: offset row r by 2r so one sorted search serves all rows
        object.__setattr__(self, "_flat", (monotone + 2.0 * rows[..., None]).ravel())
        within = interpolate_log(monotone, self.budgets, np.array([self.censor_at]))[..., 0]
        object.__setattr__(self, "_solved_within", within)

    @property
    def n_instances(self) -> int:
        return int(self.curves.shape[0])

    @property
    def n_providers(self) -> int:
        return int(self.curves.shape[1])

    def draw(self, rng: np.random.Generator, size: int) -> Array:
        """`size` draws: sampled cost until first success, shape (size, providers); censored ones = censor_at."""
        n_prov, n_grid = self.n_providers, len(self.budgets)
        instance = rng.integers(0, self.n_instances, size)
        u = np.broadcast_to(rng.random((size, 1 if self.shared_uniform else n_prov)), (size, n_prov))
        rows = instance[:, None] * n_prov + np.arange(n_prov)[None, :]
        # first grid point where the curve reaches u, then linear in log b from the point before
        j = np.searchsorted(self._flat, u + 2.0 * rows, side="left") - rows * n_grid
        j = np.clip(j, 1, n_grid - 1)
        lo = self._flat[rows * n_grid + j - 1] - 2.0 * rows
        hi = self._flat[rows * n_grid + j] - 2.0 * rows
        log_b = np.log(self.budgets)
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.clip(np.where(hi > lo, (u - lo) / (hi - lo), 1.0), 0.0, 1.0)
        cost = np.exp(log_b[j - 1] + t * (log_b[j] - log_b[j - 1]))
        cost = np.where(u <= self._flat[rows * n_grid] - 2.0 * rows, self.budgets[0], cost)
        solved = u < self._solved_within.ravel()[rows]
        return cast(Array, np.where(solved, np.minimum(cost, self.censor_at), self.censor_at))

    def draw_until(self, rng: np.random.Generator, budget: float, accounting: Accounting) -> tuple[Array, Array]:
        """Draws in fixed batches until their total charge exceeds `budget`.

        Returns the costs (draws, providers) and the cumulative charge after each draw;
        the sample a budget F buys is the prefix whose cumulative charge is <= F.
        """
        batches: list[Array] = []
        charged: list[Array] = []
        spent = 0.0
        while spent <= budget:
            batch = self.draw(rng, CHUNK)
            # sequential sums, so the charge after each draw does not depend on the batching
            cumulative = np.cumsum(np.concatenate(([spent], draw_cost(batch, accounting))))[1:]
            batches.append(batch)
            charged.append(cumulative)
            spent = float(cumulative[-1])
        return np.concatenate(batches), np.concatenate(charged)
