"""`--levels start:stop:count`: parsing and bounds before any work, and the default grid of solve rates."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from modelarb.errors import AnalysisError

if TYPE_CHECKING:
    from modelarb.core.search import Scheme
    from modelarb.data.outcomes import Outcomes

# every level costs each search a column of its curves; the paper scheme reads its 5-stage grid a block at a time
MAX_LEVELS = 5_000
DEFAULT_LEVELS = 1000
ROUNDING = 5e-4  # a stop this close above the best solve rate is the best, printed to three decimals
EXAMPLE = "0.68:best:1000"


@dataclass(frozen=True)
class LevelSpec:
    """A parsed `--levels`: start, stop (None: the best single provider's solve rate) and count."""

    text: str
    start: float
    stop: float | None
    count: int


def parse_levels(text: str) -> LevelSpec:
    """Check `start:stop:count` without the data: finite numbers, start ≤ stop, an integral count in
    [1, MAX_LEVELS] (the count before any work; the range against the data in `solve_rate_grid`)."""
    parts = [part.strip() for part in text.split(":")]
    bad = AnalysisError(f"--levels {text!r} is not start:stop:count; write e.g. --levels 0.68:0.755:1000 or {EXAMPLE}")
    if len(parts) != 3:
        raise bad
    try:
        start = float(parts[0])
        stop = None if parts[1].lower() == "best" else float(parts[1])
        count_value = float(parts[2])
    except ValueError:
        raise bad from None
    if not math.isfinite(count_value) or count_value != int(count_value):
        raise bad
    if not math.isfinite(start) or (stop is not None and not math.isfinite(stop)):
        raise AnalysisError(f"--levels {text!r}: start and stop must be finite solve rates, e.g. {EXAMPLE}")
    count = int(count_value)
    descending = stop is not None and start > stop
    low, high = (parts[1], parts[0]) if descending else (parts[0], parts[1])
    hint = f"--levels {low}:{high}:{min(max(abs(count), 1), MAX_LEVELS)}"  # every part this check can fix, fixed
    if descending:
        raise AnalysisError(f"--levels {text!r}: start must not exceed stop (the levels ascend); write e.g. {hint}")
    if count < 0:
        raise AnalysisError(f"--levels {text!r}: the count must be a positive number of solve rates; write e.g. {hint}")
    if count == 0:
        raise AnalysisError(f"--levels {text!r}: the grid of solve rates is empty; give a count of at least 1: {hint}")
    if count > MAX_LEVELS:
        raise AnalysisError(
            f"--levels {text!r}: at most {MAX_LEVELS:,} solve rates (memory grows with the count); write e.g. {hint}"
        )
    return LevelSpec(text, start, stop, count)


def levels_option(text: str | None) -> str | None:
    """Typer callback: refuse a malformed `--levels` while parsing the command line, before any work."""
    if text is not None:
        parse_levels(text)
    return text


def solve_rate_grid(spec: str | None, outcomes: Outcomes, scheme: Scheme) -> NDArray[np.float64]:
    """The levels u of `--levels start:stop:count` (stop may be `best`), or `default_levels`."""
    from modelarb.cli.output import console_err
    from modelarb.core.search import best_solve_rate

    note_cutoffs(outcomes, scheme)
    best = best_solve_rate(outcomes, scheme)
    if spec is None:
        return default_levels(outcomes, best)
    levels = parse_levels(spec)
    stop = best if levels.stop is None else levels.stop
    if best < stop <= best + ROUNDING:
        console_err.print(
            f"levels: stop {stop:g} is the best single provider's solve rate {best:.4f} rounded; the grid ends there",
            highlight=False,
        )
        stop = best
    valid_start = levels.start if 0 < levels.start < best else best / 2
    if levels.start <= 0 or stop > best:
        raise AnalysisError(
            f"--levels {spec!r}: solve rates must lie in (0, {best:.4f}], the best single provider's solve rate "
            f"in the {scheme} scheme; end the grid there with e.g. --levels {valid_start:.2g}:best:{levels.count}"
        )
    return np.linspace(min(levels.start, stop), stop, levels.count)


def default_levels(outcomes: Outcomes, best: float, count: int = DEFAULT_LEVELS) -> NDArray[np.float64]:
    """`count` levels from where cascades start to matter (`scales.cascades_start`) up to `best`, the best single
    provider's solve rate; when every provider reaches `best`, from one instance's worth of it."""
    from modelarb.core.scales import cascades_start

    low = cascades_start(outcomes, best)
    return np.linspace(min(1.0 / outcomes.n_instances, best) if low is None else low, best, count)


def note_cutoffs(outcomes: Outcomes, scheme: Scheme) -> None:
    """In the paper scheme, say on stderr which providers its budget grid cuts off, and what it uses."""
    if scheme != "paper":
        return
    from modelarb.cli.output import console_err
    from modelarb.core.scales import cutoff_notes, is_paper_data, settings_for

    grid = settings_for(outcomes).market_grid
    origin = "the paper's grid (the paper's data)" if is_paper_data(outcomes) else "derived from the market's costs"
    notes = cutoff_notes(outcomes, grid.high)
    if notes or not is_paper_data(outcomes):
        console_err.print(
            f"paper scheme: budgets {grid.low:.3g} to {grid.high:.3g} {outcomes.unit}, {origin}", highlight=False
        )
    for note in notes:
        console_err.print(f"  cut off: {note}", highlight=False)
