"""Numbers as a market report prints them: costs in the market's own unit, percentages, solve rates."""

from __future__ import annotations

import math

from modelarb.core.units import with_unit
from modelarb.data.outcomes import USD


def amount(value: float, unit: str) -> str:
    """A cost in its unit: `$0.1234` for dollars, `19.36 attempts`, `1 attempt`, `2.5e+06 compute` otherwise."""
    if not math.isfinite(value):
        return "—"
    if unit == USD:
        return f"${value:.4f}" if abs(value) >= 0.01 else f"${value:.4g}"
    return with_unit(f"{value:.4g}", unit)


def unit_name(unit: str) -> str:
    """The unit as an axis or column label says it: `$` for dollars, else its own name."""
    return "$" if unit == USD else unit


def percent(value: float) -> str:
    """`12.3%`; a value that rounds to zero prints as `0.0%`, never `-0.0%`."""
    return "—" if not math.isfinite(value) else f"{round(100 * value, 1) + 0.0:.1f}%"


def level(value: float) -> str:
    """A solve rate u, to four decimals."""
    return f"{value:.4f}"
