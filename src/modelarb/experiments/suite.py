"""Every reproduced result of the paper, in the order a report shows them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from modelarb.experiments.competition import price_competition
from modelarb.experiments.distillation import distillation_series
from modelarb.experiments.entry import entry_experiment
from modelarb.experiments.larger import larger_market
from modelarb.experiments.lean import lean_market
from modelarb.experiments.pair import PairMarket, pair_market
from modelarb.experiments.paper_data import (
    ENTRANT,
    ENTRY_INCUMBENTS,
    LEAN,
    LEAN_MARKET,
    LEAN_STUDENTS,
    PAIR,
    SIX,
    SWEBENCH,
    SWEBENCH_STUDENTS,
    Distillation,
    PaperData,
)
from modelarb.experiments.revenue import revenue_shares
from modelarb.experiments.robustness import DOMAIN_PAIRS, robustness
from modelarb.experiments.settings import Settings

Advance = Callable[[int], None]


class Reproduced(Protocol):
    """An experiment's result: it names the headline numbers it reproduces."""

    def metrics(self) -> dict[str, float]: ...


class Context:
    """The data and settings of one reproduction, and the pair market other experiments build on."""

    def __init__(self, data: PaperData, settings: Settings) -> None:
        self.data = data
        self.settings = settings
        self._pair: PairMarket | None = None

    @property
    def pair(self) -> PairMarket:
        """The pair market, searched once."""
        if self._pair is None:
            self._pair = pair_market(self.data.market(SWEBENCH, PAIR), self.settings)
        return self._pair


@dataclass(frozen=True)
class Experiment:
    """One result of the paper: its name, a title, its progress steps, and how to run it.

    `run(context, advance)` may call `advance(n)` as it completes n of its steps.
    """

    name: str
    title: str
    run: Callable[[Context, Advance], Reproduced]
    steps: Callable[[Settings], int] = lambda settings: 1


def _distillation(domain: str, spec: Distillation) -> Callable[[Context, Advance], Reproduced]:
    def run(ctx: Context, advance: Advance) -> Reproduced:
        outcomes = ctx.data.market(spec.folder, (spec.teacher, *spec.students))
        return distillation_series(domain, outcomes, spec, ctx.settings)

    return run


EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment("pair", "Pair market: GPT-5 mini and DeepSeek v3.2", lambda ctx, advance: ctx.pair),
    Experiment(
        "competition", "Price competition between arbitrageurs", lambda ctx, advance: price_competition(ctx.pair.result)
    ),
    Experiment("revenue", "Revenue shares in the pair market", lambda ctx, advance: revenue_shares(ctx.pair.result)),
    Experiment(
        "robustness",
        "Robust arbitrage: fit budgets and domains",
        lambda ctx, advance: robustness(ctx.data.market(SWEBENCH, PAIR), ctx.settings, advance),
        steps=lambda settings: len(DOMAIN_PAIRS) * settings.bootstraps,
    ),
    Experiment("distill_swebench", "Distillation on SWE-bench", _distillation("swebench", SWEBENCH_STUDENTS)),
    Experiment("distill_lean", "Distillation on Lean (miniF2F)", _distillation("lean", LEAN_STUDENTS)),
    Experiment(
        "larger",
        "Six-model SWE-bench market",
        lambda ctx, advance: larger_market(ctx.data.market(SWEBENCH, SIX), ctx.settings),
    ),
    Experiment(
        "entry",
        "Market entry of mini-coder 4B",
        lambda ctx, advance: entry_experiment(
            ctx.data.market(SWEBENCH, (*ENTRY_INCUMBENTS, ENTRANT)), ENTRY_INCUMBENTS, ENTRANT, ctx.settings
        ),
    ),
    Experiment(
        "lean",
        "Theorem proving: the Lean market",
        lambda ctx, advance: lean_market(ctx.data.market(LEAN, LEAN_MARKET), ctx.settings),
    ),
)
