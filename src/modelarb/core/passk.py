"""Unbiased pass@k from recorded attempts (METHOD §2).

F(k) = C(n-s, k) / C(n, k) is the probability that k attempts drawn without
replacement from n recorded ones (s of them successes) all fail; beyond n it is
0 if s > 0 else 1. Computed in log space with log-gamma, never with factorials.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def failure_probability(n: ArrayLike, s: ArrayLike, k: ArrayLike) -> NDArray[np.float64]:
    """F(k): the chance that k fresh attempts all fail (broadcasts over n, s, k)."""
    from scipy.special import gammaln  # scipy takes ~0.3 s to load: only when a curve is computed

    n_, s_, k_ = np.broadcast_arrays(np.asarray(n, float), np.asarray(s, float), np.asarray(k, float))
    k_ = np.maximum(k_, 0.0)
    fails = n_ - s_
    reachable = k_ <= fails
    kk = np.where(reachable, k_, 0.0)
    log_f = gammaln(fails + 1) - gammaln(fails - kk + 1) - gammaln(n_ + 1) + gammaln(n_ - kk + 1)
    out = np.where(reachable, np.exp(log_f), 0.0)
    # beyond the recorded attempts: solved for sure if any success was seen, else never
    beyond = k_ > n_
    return np.where(beyond, np.where(s_ > 0, 0.0, 1.0), out)


def pass_at_k(n: ArrayLike, s: ArrayLike, k: ArrayLike) -> NDArray[np.float64]:
    """1 - F(k): the chance that k fresh attempts include a verified one."""
    return 1.0 - failure_probability(n, s, k)


def attempts_within(cap: ArrayLike, cost: ArrayLike) -> NDArray[np.float64]:
    """k = floor(cap / cost): attempts a cap buys (a free attempt buys unboundedly many)."""
    cap_, cost_ = np.broadcast_arrays(np.asarray(cap, float), np.asarray(cost, float))
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.floor(cap_ / cost_ * (1 + 1e-12))
    return np.where(cost_ > 0, k, np.where(cap_ > 0, np.inf, 0.0))
