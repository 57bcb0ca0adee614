"""Market economics on top of the arbitrage engine: revenue, competition, segmentation, entry, distillation."""

from modelarb.economics.competition import CompetitionResult, UndercutResult, compete, undercut
from modelarb.economics.distillation import DistillationResult, LogFit, distillation, fit_log
from modelarb.economics.entry import EntryResult, market_entry
from modelarb.economics.larger import cascade_cost, market_and_rival, market_arbitrage
from modelarb.economics.revenue import RevenueResult, revenue
from modelarb.economics.segmentation import SegmentationResult, segment, segmentation
from modelarb.economics.submarket import read_submarket

__all__ = [
    "CompetitionResult",
    "DistillationResult",
    "EntryResult",
    "LogFit",
    "RevenueResult",
    "SegmentationResult",
    "UndercutResult",
    "cascade_cost",
    "compete",
    "distillation",
    "fit_log",
    "market_and_rival",
    "market_arbitrage",
    "market_entry",
    "read_submarket",
    "revenue",
    "segment",
    "segmentation",
    "undercut",
]
