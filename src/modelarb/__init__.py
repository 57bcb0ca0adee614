"""modelarb: computational arbitrage in AI model markets.

The public API: load a market (`load_market`), search cascades (`search`), fit a plan
for a broker (`fit`, `Plan`); economics live in `modelarb.economics`, robust fitting in
`modelarb.robust`.
"""

from modelarb.core.cascade import Cascade
from modelarb.core.plan import Plan, fit
from modelarb.core.result import ArbitrageResult
from modelarb.core.search import best_solve_rate, search
from modelarb.data import MarketReport, Outcomes, load_market
from modelarb.errors import AnalysisError, DataError, DatasetError, ModelarbError

__version__ = "0.1.0"

__all__ = [
    "AnalysisError",
    "ArbitrageResult",
    "Cascade",
    "DataError",
    "DatasetError",
    "MarketReport",
    "ModelarbError",
    "Outcomes",
    "Plan",
    "__version__",
    "best_solve_rate",
    "fit",
    "load_market",
    "search",
]
