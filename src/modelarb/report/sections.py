"""Which figure module draws each experiment's section of the report."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modelarb.report.figures import competition, distillation, entry, larger, lean, pair, revenue, robustness
from modelarb.report.section import Section

SECTIONS: dict[str, Callable[[Any], Section]] = {
    "pair": pair.section,
    "competition": competition.section,
    "revenue": revenue.section,
    "robustness": robustness.section,
    "distill_swebench": distillation.section,
    "distill_lean": distillation.section,
    "larger": larger.section,
    "entry": entry.section,
    "lean": lean.section,
}
