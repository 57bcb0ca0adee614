"""Market segmentation: which provider is cheapest in which band of u, without arbitrage (METHOD §5.7)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modelarb.core.result import ArbitrageResult

Array = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class SegmentationResult:
    """The cheapest provider at each level and its runs.

    `cheapest[u]` indexes `providers` (−1 where nobody reaches u); `bands` are its runs as
    (provider, u_low, u_high), over levels in increasing order.
    """

    levels: Array
    providers: tuple[str, ...]
    cheapest: NDArray[np.int64]
    bands: tuple[tuple[str, float, float], ...]

    @property
    def never_cheapest(self) -> tuple[str, ...]:
        """Providers that set the market price at no level: an arbitrageur can leave them out."""
        seen = {name for name, _, _ in self.bands}
        return tuple(p for p in self.providers if p not in seen)

    def to_dict(self) -> dict[str, Any]:
        return {
            "providers": list(self.providers),
            "bands": [{"provider": p, "u_low": low, "u_high": high} for p, low, high in self.bands],
            "never_cheapest": list(self.never_cheapest),
        }


def segmentation(result: ArbitrageResult) -> SegmentationResult:
    """The bands of u in which each provider is the cheapest single provider."""
    return segment(result.levels, result.provider_costs, result.providers)


def segment(levels: Array, provider_costs: Array, providers: tuple[str, ...]) -> SegmentationResult:
    """Segmentation from single-provider costs C_p(u) (P, U) on `levels`."""
    cheapest = np.where(np.isfinite(provider_costs).any(axis=0), provider_costs.argmin(axis=0), -1)
    starts = np.flatnonzero(np.diff(cheapest, prepend=-2) != 0)
    ends = np.append(starts[1:], len(cheapest)) - 1
    bands = tuple(
        (providers[cheapest[a]], float(levels[a]), float(levels[b]))
        for a, b in zip(starts, ends, strict=True)
        if cheapest[a] >= 0
    )
    return SegmentationResult(levels, providers, cheapest, bands)
