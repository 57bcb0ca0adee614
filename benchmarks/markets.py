"""Synthetic leaderboard markets for the benchmarks: one recorded attempt per instance and provider.

Difficulty is correlated across providers (one latent difficulty per instance, one skill per
provider), and the cost of an attempt spans three orders of magnitude across providers
(stronger models cost more, with noise), times a per-instance length factor.
"""

from __future__ import annotations

import numpy as np

from modelarb.data.outcomes import USD, Outcomes


def leaderboard(providers: int, instances: int, seed: int = 0, attempts: int = 1) -> Outcomes:
    """A market of `providers` models on `instances` problems, `attempts` recorded attempts per cell."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0.0, 1.5, instances)
    skill = rng.normal(0.0, 1.0, providers)
    rank = np.argsort(np.argsort(skill + rng.normal(0.0, 0.7, providers)))  # price rank follows skill, noisily
    base = 10.0 ** (-4.0 + 3.0 * rank / max(providers - 1, 1))  # $1e-4 … $1e-1 per attempt
    length = rng.lognormal(0.0, 0.5, instances)
    chance = 1.0 / (1.0 + np.exp(-(skill[None, :] - difficulty[:, None])))
    successes = rng.binomial(attempts, chance)
    return Outcomes(
        instances=np.array([f"task-{i:05d}" for i in range(instances)]),
        providers=tuple(f"model-{p:03d}" for p in range(providers)),
        n=np.full((instances, providers), attempts, dtype=np.int64),
        s=successes.astype(np.int64),
        cost=base[None, :] * length[:, None],
        unit=USD,
        source=f"synthetic leaderboard (seed {seed})",
    )
