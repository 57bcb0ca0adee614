"""Price competition between arbitrageurs (METHOD §5.9, §7).

Arbitrageurs take turns undercutting the consumer price by a factor per round, from the
market price C_P(u). The race stops where the second-cheapest arbitrageur can no longer
undercut: price_{t+1} = max(factor · price_t, floor), floor = the second-lowest cost
(capped by C_P). With identical arbitrageurs the floor is their common cost — the paper's
race, max(0.93 · price_t, C_q) — and the margin there is 0; with different ones the
cheapest serves the market at the second-lowest cost, keeping the gap as its margin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from modelarb.errors import AnalysisError

Array = NDArray[np.float64]
PAPER_FACTOR = 0.93  # each undercut multiplies the price by this (METHOD §5.9)
PAPER_ROUNDS = 7


@dataclass(frozen=True, eq=False)
class UndercutResult:
    """The paper's race between arbitrageurs with the same cost C_q(u).

    `prices[t, u]` is the consumer price after t rounds (row 0: C_P(u)); where C_q(u) ≥ C_P(u)
    nobody undercuts and the price stays C_P(u).
    """

    factor: float
    market_price: Array
    arbitrage_cost: Array
    prices: Array

    @property
    def rounds(self) -> int:
        return len(self.prices) - 1

    @property
    def price_ratio(self) -> Array:
        """(R + 1, U) consumer price / C_P(u)."""
        return _ratio(self.prices, self.market_price)

    @property
    def margins(self) -> Array:
        """(R + 1, U) the arbitrageurs' net margin (price − C_q) / price at each round; 0 where they do not sell."""
        selling = (self.arbitrage_cost < self.market_price) & np.isfinite(self.market_price)
        return _margin(self.prices, self.arbitrage_cost, selling)

    def to_dict(self) -> dict[str, Any]:
        return {
            "factor": self.factor,
            "rounds": self.rounds,
            "market_price": self.market_price,
            "arbitrage_cost": self.arbitrage_cost,
            "prices": self.prices,
            "price_ratio": self.price_ratio,
            "margins": self.margins,
        }


@dataclass(frozen=True, eq=False)
class CompetitionResult:
    """A race between arbitrageurs with their own cost curves (`arbitrage_costs[a, u]`).

    `prices[t, u]`: the consumer price after t rounds. `settled_price[u]`: where the race
    ends — the second-lowest cost, or C_P(u) if at most one arbitrageur undercuts C_P(u).
    `winner[u]`: the arbitrageur serving the market then (the cheapest; ties to the first
    named), −1 where the providers keep it.
    """

    names: tuple[str, ...]
    factor: float
    market_price: Array
    arbitrage_costs: Array
    prices: Array
    settled_price: Array
    winner: NDArray[np.int64]

    @property
    def rounds(self) -> int:
        return len(self.prices) - 1

    @property
    def winner_cost(self) -> Array:
        """The serving arbitrageur's cost at each u (NaN where nobody undercuts)."""
        cost = np.take_along_axis(self.arbitrage_costs, np.maximum(self.winner, 0)[None, :], 0)[0]
        return np.where(self.winner >= 0, cost, np.nan)

    @property
    def settled_margin(self) -> Array:
        """The winner's net margin at the settled price; 0 where nobody undercuts."""
        return _margin(self.settled_price[None, :], self.winner_cost, self.winner >= 0)[0]

    @property
    def price_ratio(self) -> Array:
        """(R + 1, U) consumer price / C_P(u)."""
        return _ratio(self.prices, self.market_price)

    @property
    def margins(self) -> Array:
        """(R + 1, U) the cheapest arbitrageur's net margin at each round's price."""
        return _margin(self.prices, self.winner_cost, self.winner >= 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "factor": self.factor,
            "rounds": self.rounds,
            "market_price": self.market_price,
            "arbitrage_costs": {name: self.arbitrage_costs[a] for a, name in enumerate(self.names)},
            "prices": self.prices,
            "price_ratio": self.price_ratio,
            "settled_price": self.settled_price,
            "winner": [self.names[a] if a >= 0 else None for a in self.winner],
            "settled_margin": self.settled_margin,
        }


def undercut(
    market_price: ArrayLike, arbitrage_cost: ArrayLike, factor: float = PAPER_FACTOR, rounds: int = PAPER_ROUNDS
) -> UndercutResult:
    """The paper's race: price_{t+1} = max(factor · price_t, C_q) from price_0 = C_P, for `rounds` rounds."""
    price, cost = _curves(market_price, arbitrage_cost)
    floor = np.where(cost < price, cost, price)
    return UndercutResult(factor, price, cost, _race(price, floor, factor, rounds))


def compete(
    arbitrage_costs: ArrayLike,
    market_price: ArrayLike,
    names: Sequence[str],
    factor: float = PAPER_FACTOR,
    rounds: int | None = None,
) -> CompetitionResult:
    """Arbitrageurs with costs (A, U) undercut each other until nobody can (`rounds=None`) or for `rounds` rounds."""
    costs = np.atleast_2d(np.asarray(arbitrage_costs, dtype=float))
    price, _ = _curves(market_price, costs[0])
    if costs.shape != (len(names), len(price)):
        raise AnalysisError(
            f"need one cost curve per arbitrageur over {len(price)} levels: got costs of shape {costs.shape} "
            f"for {len(names)} name(s)"
        )
    ordered = np.sort(costs, axis=0)
    second = ordered[1] if len(costs) > 1 else np.full_like(price, np.inf)
    active = (ordered[0] < price) & np.isfinite(price)
    settled = np.where(active, np.minimum(price, second), price)
    return CompetitionResult(
        names=tuple(names),
        factor=factor,
        market_price=price,
        arbitrage_costs=costs,
        prices=_race(price, settled, factor, rounds),
        settled_price=settled,
        winner=np.where(active, costs.argmin(axis=0), -1),
    )


def _curves(market_price: ArrayLike, cost: ArrayLike) -> tuple[Array, Array]:
    price = np.atleast_1d(np.asarray(market_price, dtype=float))
    cost = np.atleast_1d(np.asarray(cost, dtype=float))
    if price.shape != cost.shape or price.ndim != 1:
        raise AnalysisError(f"market price and arbitrage cost need the same levels: shapes {price.shape}, {cost.shape}")
    return price, cost


def _race(start: Array, floor: Array, factor: float, rounds: int | None) -> Array:
    """Prices (R + 1, U): max(start · factor^t, floor); `rounds=None` runs until every level has reached its floor."""
    if not 0 < factor < 1:
        raise AnalysisError(f"the undercut factor must lie in (0, 1), got {factor}")
    falling = (floor < start) & np.isfinite(start)
    if rounds is None:
        if np.any(falling & ~(floor > 0)):
            raise AnalysisError("an arbitrageur has zero cost, so undercutting never stops; give a number of rounds")
        with np.errstate(divide="ignore", invalid="ignore"):
            needed = np.ceil(np.log(floor[falling] / start[falling]) / np.log(factor) - 1e-9)
        rounds = int(needed.max()) if needed.size else 0
    if rounds < 0:
        raise AnalysisError(f"the number of rounds must be >= 0, got {rounds}")
    steps = start[None, :] * factor ** np.arange(rounds + 1)[:, None]
    return np.where(falling[None, :], np.maximum(steps, floor[None, :]), start[None, :])


def _ratio(prices: Array, market_price: Array) -> Array:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.isfinite(market_price) & (market_price > 0), prices / market_price, np.nan)


def _margin(prices: Array, cost: Array, selling: NDArray[np.bool_]) -> Array:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(selling, (prices - cost) / prices, 0.0)
