"""Reproductions of the paper's results: each takes data and returns numbers and the arrays to plot."""

from modelarb.experiments.competition import PriceCompetition, price_competition
from modelarb.experiments.distillation import DistillationSeries, distillation_series
from modelarb.experiments.entry import MarketEntry, entry_experiment
from modelarb.experiments.larger import LargerMarket, larger_market
from modelarb.experiments.lean import LeanMarket, lean_market
from modelarb.experiments.pair import PairMarket, pair_market
from modelarb.experiments.paper_data import PaperData
from modelarb.experiments.revenue import RevenueShares, revenue_shares
from modelarb.experiments.robustness import Robustness, robustness
from modelarb.experiments.settings import Settings
from modelarb.experiments.suite import EXPERIMENTS, Context, Experiment, Reproduced

__all__ = [
    "EXPERIMENTS",
    "Context",
    "DistillationSeries",
    "Experiment",
    "LargerMarket",
    "LeanMarket",
    "MarketEntry",
    "PairMarket",
    "PaperData",
    "PriceCompetition",
    "Reproduced",
    "RevenueShares",
    "Robustness",
    "Settings",
    "distillation_series",
    "entry_experiment",
    "larger_market",
    "lean_market",
    "pair_market",
    "price_competition",
    "revenue_shares",
    "robustness",
]
