"""`Cascade`: ordered providers with caps (METHOD §4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelarb.core.units import with_unit
from modelarb.errors import AnalysisError


@dataclass(frozen=True)
class Cascade:
    """Buy from `providers[0]` until verified or `caps[0]` is spent, then the next, and so on."""

    providers: tuple[str, ...]
    caps: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.providers) != len(self.caps):
            raise AnalysisError(f"a cascade needs one cap per provider: {self.providers} vs {self.caps}")
        if any(not cap >= 0 for cap in self.caps):
            raise AnalysisError(f"cascade caps must be >= 0, got {self.caps}")
        object.__setattr__(self, "caps", tuple(float(c) for c in self.caps))

    def active(self) -> Cascade:
        """The same cascade without its zero-cap stages (they buy nothing)."""
        keep = [k for k, cap in enumerate(self.caps) if cap > 0]
        return Cascade(tuple(self.providers[k] for k in keep), tuple(self.caps[k] for k in keep))

    @property
    def total_cap(self) -> float:
        return sum(self.caps)

    def describe(self, unit: str = "USD") -> str:
        """`gpt5mini ≤ $0.081 → deepseek ≤ $0.919` (zero-cap stages left out)."""
        stages = self.active()
        if not stages.providers:
            return "(buys nothing)"
        fmt = (lambda c: f"${c:.3g}") if unit == "USD" else (lambda c: with_unit(f"{c:.3g}", unit))
        return " → ".join(f"{p} ≤ {fmt(c)}" for p, c in zip(stages.providers, stages.caps, strict=True))

    def to_dict(self) -> dict[str, Any]:
        return {"providers": list(self.providers), "caps": list(self.caps)}
