"""Data layer: the `Outcomes` market model, its loaders and the dataset registry."""

from modelarb.data.jsonl import MarketReport, load_jsonl_folder
from modelarb.data.market import load_market
from modelarb.data.outcomes import USD, Outcomes
from modelarb.data.table import load_table

__all__ = ["USD", "MarketReport", "Outcomes", "load_jsonl_folder", "load_market", "load_table"]
