"""Robust arbitrage (METHOD §6): fit a cascade on a bought sample, evaluate it on another domain."""

from modelarb.parallel import DaskExecutor, Executor, ProcessExecutor, SerialExecutor, executor_for
from modelarb.robust.analysis import EVALUATIONS, PAPER_FIT_BUDGETS, Evaluation, RobustResult, run
from modelarb.robust.domains import domain_mask, known_domains
from modelarb.robust.sampling import ACCOUNTINGS, Accounting
from modelarb.robust.scheme import RobustScheme

__all__ = [
    "ACCOUNTINGS",
    "EVALUATIONS",
    "PAPER_FIT_BUDGETS",
    "Accounting",
    "DaskExecutor",
    "Evaluation",
    "Executor",
    "ProcessExecutor",
    "RobustResult",
    "RobustScheme",
    "SerialExecutor",
    "domain_mask",
    "executor_for",
    "known_domains",
    "run",
]
