"""Which pair robust arbitrage fits when the user names none (or more than two providers).

The pair is the two providers that are the cheapest single provider at the most levels of the
market's own segmentation (exact curves), in cascade order: cheapest attempt first. When only one
provider is ever cheapest, it is paired with the provider reaching the highest solve rate (any
number of attempts) among the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from modelarb.core.grid_providers import cascade_order, cheapest_counts
from modelarb.data.outcomes import Outcomes
from modelarb.errors import AnalysisError


@dataclass(frozen=True)
class PairChoice:
    """The chosen pair in cascade order and, in words, why."""

    providers: tuple[str, str]
    reason: str


def choose_pair(outcomes: Outcomes, levels: NDArray[np.float64]) -> PairChoice:
    """The pair robust arbitrage fits on `outcomes`, by the rule of this module, over solve rates `levels`."""
    if outcomes.n_providers < 2:
        raise AnalysisError(f"robust arbitrage fits a pair cascade: the market has {outcomes.n_providers} provider")
    counts = cheapest_counts(outcomes, levels)
    reach = (outcomes.s > 0).mean(axis=0)
    ranked = [int(p) for p in np.argsort(-counts, kind="stable") if counts[p] > 0]
    names = outcomes.providers
    span = f"the {len(levels)} solve rates {levels.min():.4f} to {levels.max():.4f}"
    if len(ranked) >= 2:
        first, second = ranked[:2]
        reason = (
            f"cheapest single providers at the most of {span}: {names[first]} at {counts[first]}, "
            f"{names[second]} at {counts[second]}"
        )
    else:
        first = ranked[0] if ranked else int(np.argmax(reach))
        others = [p for p in range(outcomes.n_providers) if p != first]
        second = max(others, key=lambda p: (reach[p], -p))
        reason = (
            f"{names[first]} is the only cheapest single provider over {span}; paired with {names[second]}, "
            f"the other provider reaching the highest solve rate ({reach[second]:.4f})"
        )
    order = cascade_order(outcomes, [first, second])
    return PairChoice((names[order[0]], names[order[1]]), reason + "; cascade order: cheapest attempt first")
