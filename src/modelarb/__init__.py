"""modelarb: computational arbitrage in AI model markets."""

from modelarb.data import MarketReport, Outcomes, load_market
from modelarb.errors import AnalysisError, DataError, DatasetError, ModelarbError

__version__ = "0.1.0"

__all__ = [
    "AnalysisError",
    "DataError",
    "DatasetError",
    "MarketReport",
    "ModelarbError",
    "Outcomes",
    "__version__",
    "load_market",
]
