"""The registry of headline metrics: what the paper reports, and how close a reproduction must come."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from modelarb.experiments.paper_data import LEAN_STUDENTS, SWEBENCH_STUDENTS

Style = Literal["percent", "dollars", "level", "ratio", "count"]
Bound = Literal["near", "below"]


@dataclass(frozen=True)
class Metric:
    """One headline number: the paper's value and the tolerance a reproduction must meet.

    `tolerance` is absolute in the metric's own scale (0.01 = one point of margin), or a
    fraction of the paper's value when `relative`. `bound="below"` means the paper only
    states an upper bound: ours must be below `paper`. `bootstrap` marks numbers whose
    spread, hence the chance of landing within tolerance, depends on the bootstrap count.
    `known` explains a deviation from the paper that is understood and documented.
    """

    key: str
    experiment: str
    description: str
    paper: float
    tolerance: float
    style: Style = "percent"
    relative: bool = False
    bound: Bound = "near"
    bootstrap: bool = False
    known: str = ""

    def within(self, ours: float) -> bool:
        if not math.isfinite(ours):
            return False
        if self.bound == "below":
            return ours < self.paper
        allowed = self.tolerance * abs(self.paper) if self.relative else self.tolerance
        return abs(ours - self.paper) <= allowed + 1e-12

    def show(self, value: float) -> str:
        """A value of this metric as the paper would print it."""
        if not math.isfinite(value):
            return "—"
        return {
            "percent": f"{100 * value:.1f}%",
            "dollars": f"${value:.3f}",
            "level": f"{value:.3f}",
            "ratio": f"{value:.3f}",
            "count": f"{value:.0f}",
        }[self.style]

    def show_paper(self) -> str:
        return ("< " if self.bound == "below" else "") + self.show(self.paper)

    def show_tolerance(self) -> str:
        if self.bound == "below":
            return "bound"
        if self.relative:
            return f"±{100 * self.tolerance:.0f}%"
        if self.style == "percent":
            return f"±{100 * self.tolerance:.1f} pt"
        return f"±{self.tolerance:g}"


@dataclass(frozen=True)
class MetricRow:
    """A registered metric with our value."""

    metric: Metric
    ours: float

    @property
    def within(self) -> bool:
        return self.metric.within(self.ours)

    def to_dict(self) -> dict[str, Any]:
        m = self.metric
        return {
            "description": m.description,
            "experiment": m.experiment,
            "ours": self.ours if math.isfinite(self.ours) else None,
            "paper": m.paper,
            "tolerance": m.tolerance,
            "tolerance_kind": "upper bound" if m.bound == "below" else "relative" if m.relative else "absolute",
            "within": self.within,
            "tolerance_depends_on_bootstraps": m.bootstrap,
            "known_deviation": m.known or None,
        }


SIX_SHARES = {
    "minicoder4b": ("mini-coder 4B", 0.068),
    "qwen3-coder-30b": ("Qwen3-Coder 30B", 0.105),
    "gpt5mini": ("GPT-5 mini", 0.113),
    "deepseek": ("DeepSeek v3.2", 0.230),
    "arbitrageur": ("the arbitrageur", 0.484),
}
SIX_NEAR_TIE = (
    "near-tied cascades at u ≈ 0.75: ours gives mini-coder 4B a cap of $0.0127, the paper's shares fit $0.0264; "
    "the two differ by 0.2 points of margin on the grid, and only the split between the first and last stage moves"
)
DISTILLATION = {  # per domain: its name, the students (paper_data), their sizes as the paper writes them, margins
    "swebench": (
        "SWE-bench",
        SWEBENCH_STUDENTS,
        ("70M", "200M", "600M", "1.8B", "5.4B"),
        (0.036, 0.058, 0.115, 0.231, 0.276),
    ),
    "lean": ("Lean", LEAN_STUDENTS, ("3k", "8k", "24k", "72k", "192k"), (0.042, 0.078, 0.125, 0.190, 0.203)),
}
ROBUST = {
    ("all", "all"): ("fit all, evaluate all", (0.024, 0.186, 0.222, 0.239)),
    ("not-django", "django"): ("fit not-Django, evaluate Django", (0.021, 0.210, 0.248, 0.288)),
    ("django", "not-django"): ("fit Django, evaluate not-Django", (0.017, 0.124, 0.120, 0.119)),
}
ROBUST_BUDGETS = (1, 10, 100, 1000)

METRICS: tuple[Metric, ...] = (
    # the pair market (METHOD §5.6): ±1 point of margin, ±3% of price
    Metric("pair.cap_first", "pair", "Pair market: GPT-5 mini's cap", 0.081, 0.03, "dollars", True),
    Metric("pair.cap_second", "pair", "Pair market: DeepSeek v3.2's cap", 0.919, 0.03, "dollars", True),
    Metric("pair.margin_at_0.70", "pair", "Pair market: margin at u = 0.70", 0.125, 0.01),
    Metric("pair.margin_at_0.72", "pair", "Pair market: margin at u = 0.72", 0.228, 0.01),
    Metric("pair.margin_at_0.74", "pair", "Pair market: margin at u = 0.74", 0.267, 0.01),
    Metric("pair.max_margin", "pair", "Pair market: maximum margin", 0.411, 0.01),
    Metric("pair.max_margin_at", "pair", "Pair market: solve rate of the maximum margin", 0.755, 0.005, "level"),
    Metric(
        "pair.market_price_at_max",
        "pair",
        "Pair market: market price at the maximum margin",
        0.303,
        0.03,
        "dollars",
        True,
    ),
    Metric(
        "pair.arbitrage_cost_at_max",
        "pair",
        "Pair market: arbitrage cost at the maximum margin",
        0.179,
        0.03,
        "dollars",
        True,
    ),
    Metric(
        "pair.crossover",
        "pair",
        "Pair market: solve rate above which DeepSeek is cheaper than GPT-5 mini",
        0.71,
        0.01,
        "level",
    ),
    # economics and larger markets (METHOD §5.7–5.10): ±1.5 points
    Metric(
        "competition.min_price_ratio",
        "competition",
        "Undercutting, 7 rounds ×0.93: lowest price / market price",
        0.60,
        0.015,
        "ratio",
    ),
    Metric(
        "competition.mean_price_ratio",
        "competition",
        "Undercutting: mean price / market price over u",
        0.80,
        0.015,
        "ratio",
    ),
    Metric(
        "revenue.share_without_deepseek",
        "revenue",
        "Pair market at u = 0.75: DeepSeek's share without arbitrage",
        1.0,
        0.015,
    ),
    Metric(
        "revenue.share_gpt5mini", "revenue", "Pair market at u = 0.75: GPT-5 mini's share with arbitrage", 0.180, 0.015
    ),
    Metric(
        "revenue.share_deepseek", "revenue", "Pair market at u = 0.75: DeepSeek's share with arbitrage", 0.485, 0.015
    ),
    Metric("revenue.share_arbitrageur", "revenue", "Pair market at u = 0.75: the arbitrageur's share", 0.335, 0.015),
    Metric(
        "revenue.change_min", "revenue", "Pair market: providers' revenue change, minimum over u", 0.589, 0.015, "ratio"
    ),
    Metric(
        "revenue.change_mean", "revenue", "Pair market: providers' revenue change, mean over u", 0.80, 0.015, "ratio"
    ),
    Metric(
        "six.never_cheapest",
        "larger",
        "Six-model market: providers never cheapest (Qwen3-Coder 480B, Sonnet)",
        2,
        0,
        "count",
    ),
    Metric("six.max_margin", "larger", "Six-model market: maximum margin", 0.563, 0.015),
    Metric(
        "six.pair_max_margin", "larger", "Six-model market: maximum margin of the pair on the same grid", 0.458, 0.015
    ),
    *(
        Metric(
            f"six.share_{key}",
            "larger",
            f"Six-model market at u = 0.75: {name}'s share with arbitrage",
            value,
            0.015,
            known=SIX_NEAR_TIE if key in ("minicoder4b", "deepseek") else "",
        )
        for key, (name, value) in SIX_SHARES.items()
    ),
    Metric(
        "six.share_minicoder4b+deepseek",
        "larger",
        "Six-model market at u = 0.75: mini-coder 4B's and DeepSeek v3.2's shares together",
        0.298,
        0.015,
    ),
    Metric(
        "entry.kept_without_arbitrage",
        "entry",
        "Entry of mini-coder 4B: Qwen3-Coder 30B's average share after / before, no arbitrageur",
        0.5,
        0,
        "ratio",
        bound="below",
    ),
    Metric(
        "entry.kept_with_arbitrage",
        "entry",
        "Entry of mini-coder 4B: Qwen3-Coder 30B's average share after / before, with arbitrageur",
        0.5,
        0,
        "ratio",
        bound="below",
    ),
    *(
        Metric(
            f"distill.{domain}.{student}",
            f"distill_{domain}",
            f"Distillation, {name}: maximum margin of the student on {size} {spec.size_label.split()[-1]}",
            value,
            0.015,
        )
        for domain, (name, spec, sizes, values) in DISTILLATION.items()
        for student, size, value in zip(spec.students, sizes, values, strict=True)
    ),
    Metric("lean.max_margin", "lean", "Lean market: maximum margin", 0.556, 0.015),
    Metric("lean.max_margin_at", "lean", "Lean market: solve rate of the maximum margin", 0.85, 0.01, "level"),
    Metric(
        "lean.revenue_change_min",
        "lean",
        "Lean market: providers' revenue change, minimum over u",
        0.44,
        0.015,
        "ratio",
    ),
    # robustness (METHOD §6): ±3 points, means of bootstrapped fits
    *(
        Metric(
            f"robust.{fit}_to_{evaluate}.{budget}",
            "robustness",
            f"Robust, {name}: mean margin at ${budget}",
            value,
            0.03,
            bootstrap=True,
        )
        for (fit, evaluate), (name, values) in ROBUST.items()
        for budget, value in zip(ROBUST_BUDGETS, values, strict=True)
    ),
)


def evaluate(values: dict[str, float]) -> list[MetricRow]:
    """Our value of every registered metric (NaN, hence not within tolerance, where `values` lacks it)."""
    return [MetricRow(m, float(values.get(m.key, math.nan))) for m in METRICS]


def paper_values(prefix: str) -> dict[str, float]:
    """The paper's values of the metrics whose key starts with `prefix`, keyed by the rest of the key."""
    return {m.key[len(prefix) :]: m.paper for m in METRICS if m.key.startswith(prefix)}
