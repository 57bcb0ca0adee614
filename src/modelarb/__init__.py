"""modelarb: computational arbitrage in AI model markets.

The public API: load a market (`load_market`), search cascades (`search`), fit a plan
for a broker (`fit`, `Plan`); economics live in `modelarb.economics`, robust fitting in
`modelarb.robust`. Names are imported on first use, so `import modelarb` (and the CLI)
starts without loading numpy's and scipy's numerics.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from modelarb.errors import AnalysisError, DataError, DatasetError, ModelarbError

if TYPE_CHECKING:
    from modelarb.core.cascade import Cascade
    from modelarb.core.plan import Plan, fit
    from modelarb.core.result import ArbitrageResult
    from modelarb.core.search import best_solve_rate, search
    from modelarb.data import MarketReport, Outcomes, load_market

__version__ = "0.1.0"

_LAZY = {
    "ArbitrageResult": "modelarb.core.result",
    "Cascade": "modelarb.core.cascade",
    "MarketReport": "modelarb.data",
    "Outcomes": "modelarb.data",
    "Plan": "modelarb.core.plan",
    "best_solve_rate": "modelarb.core.search",
    "fit": "modelarb.core.plan",
    "load_market": "modelarb.data",
    "search": "modelarb.core.search",
}


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first access (PEP 562)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'modelarb' has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


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
