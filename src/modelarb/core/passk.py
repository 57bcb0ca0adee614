"""Unbiased pass@k from recorded attempts (METHOD §2).

F(k) = C(n-s, k) / C(n, k) is the probability that k attempts drawn without
replacement from n recorded ones (s of them successes) all fail; beyond n it is
0 if s > 0 else 1. Computed in log space from one table of log k! (built once with
log-gamma and grown when a larger n comes), never with factorials.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

_log_factorials: NDArray[np.float64] = np.zeros(1)  # log k! for k = 0 … len − 1


def log_factorials(top: int) -> NDArray[np.float64]:
    """log k! for k = 0 … at least `top` (one shared table, extended as needed)."""
    global _log_factorials
    if top >= len(_log_factorials):
        size = max(top + 1, 2 * len(_log_factorials))
        _log_factorials = np.array([math.lgamma(k + 1.0) for k in range(size)])  # spares loading scipy (~0.3 s)
    return _log_factorials


def failure_probability(n: ArrayLike, s: ArrayLike, k: ArrayLike) -> NDArray[np.float64]:
    """F(k): the chance that k fresh attempts all fail (broadcasts over n, s, k)."""
    n_, s_, k_ = np.broadcast_arrays(np.asarray(n, float), np.asarray(s, float), np.asarray(k, float))
    k_ = np.maximum(k_, 0.0)
    fails = n_ - s_
    reachable = k_ <= fails
    kk = np.where(reachable, k_, 0.0)
    log_f = _log_ratio(fails, kk) - _log_ratio(n_, kk)
    out = np.where(reachable, np.exp(log_f), 0.0)
    # beyond the recorded attempts: solved for sure if any success was seen, else never
    beyond = k_ > n_
    return np.where(beyond, np.where(s_ > 0, 0.0, 1.0), out)


def _log_ratio(total: NDArray[np.float64], k: NDArray[np.float64]) -> NDArray[np.float64]:
    """log(total! / (total − k)!) by table look-up for whole numbers, else by log-gamma."""
    top = float(total.max(initial=0.0))
    if top < 2**31 and np.array_equal(total, np.floor(total)) and np.array_equal(k, np.floor(k)):
        table = log_factorials(int(top))
        whole = total.astype(np.int64)
        return table[whole] - table[np.maximum(whole - k.astype(np.int64), 0)]
    from scipy.special import gammaln

    return np.asarray(gammaln(total + 1) - gammaln(total - k + 1))


def pass_at_k(n: ArrayLike, s: ArrayLike, k: ArrayLike) -> NDArray[np.float64]:
    """1 - F(k): the chance that k fresh attempts include a verified one."""
    return 1.0 - failure_probability(n, s, k)


def attempts_within(cap: ArrayLike, cost: ArrayLike) -> NDArray[np.float64]:
    """k = floor(cap / cost): attempts a cap buys (a free attempt buys unboundedly many)."""
    cap_, cost_ = np.broadcast_arrays(np.asarray(cap, float), np.asarray(cost, float))
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.floor(cap_ / cost_ * (1 + 1e-12))
    return np.where(cost_ > 0, k, np.where(cap_ > 0, np.inf, 0.0))


class FailureTable:
    """F_i(j) of one provider on every instance, j = 0 … n_i − s_i + 1, computed once and read by look-up.

    Beyond n_i − s_i + 1 attempts F stays at its last value (0 once a success was seen, else 1).
    """

    def __init__(self, n: ArrayLike, s: ArrayLike) -> None:
        n_, s_ = np.asarray(n, dtype=np.int64), np.asarray(s, dtype=np.int64)
        length = n_ - s_ + 2
        self.start = np.cumsum(length) - length
        self.last = (length - 1).astype(float)
        instance = np.repeat(np.arange(len(n_)), length)
        j = np.arange(int(length.sum())) - self.start[instance]
        self.values = failure_probability(n_[instance], s_[instance], j)
        padded = np.zeros((len(n_), int(length.max(initial=1))))
        padded[instance, j] = self.values
        self.before = (np.cumsum(padded, axis=1) - padded)[instance, j]  # Σ_{j' < j} F(j'), instance by instance

    def attempts(self, k: ArrayLike) -> NDArray[np.float64]:
        """Σ_{j<k} F_i(j) for attempt counts k (..., I): the attempts bought when at most k are allowed and buying
        stops at the first success (past the table F stays at its last value, 0 or 1)."""
        k_ = np.maximum(np.asarray(k, float), 0.0)
        j = np.minimum(k_, self.last)
        at = self.start + j.astype(np.int64)
        with np.errstate(invalid="ignore"):
            return self.before[at] + np.where(self.values[at] > 0, k_ - j, 0.0)

    def at(self, k: ArrayLike) -> NDArray[np.float64]:
        """F_i(k[..., i]) for attempt counts k (..., I); negative counts read F(0), infinite ones the last value."""
        j = np.minimum(np.maximum(np.asarray(k, float), 0.0), self.last)
        return self.values[self.start + j.astype(np.int64)]


class FailureTables:
    """The failure tables of every provider in one array: F_iq(k) for rows of providers q at once."""

    def __init__(self, tables: list[FailureTable]) -> None:
        sizes = np.cumsum([0] + [len(table.values) for table in tables])
        self.values = np.concatenate([table.values for table in tables]) if tables else np.zeros(0)
        self.start = np.array([table.start + base for table, base in zip(tables, sizes, strict=False)])
        self.last = np.array([table.last for table in tables])

    def at(self, q: NDArray[np.int64], k: NDArray[np.float64]) -> NDArray[np.float64]:
        """F of provider q[r] on every instance at attempt counts k[r] (R, I), read as `FailureTable.at`."""
        j = np.minimum(np.maximum(k, 0.0), self.last[q])
        return self.values[self.start[q] + j.astype(np.int64)]
