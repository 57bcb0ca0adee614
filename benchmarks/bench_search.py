"""Benchmark of the paper scheme's cascade search, against a straightforward per-cascade evaluation.

Times, in one run:
  (a) the pair market (GPT-5 mini then DeepSeek v3.2): 102 cap pairs × 1000 levels, mean-margin selection;
  (b) the 4-provider market (minicoder4b, qwen3-coder-30b, gpt5mini, deepseek) on the 20-point grid of
      METHOD §5.7 (stage_caps(4, 1e-3, 1, 20): 14,700 cap vectors), u = linspace(0.40, best, 100), per level.
For each: best-of-N wall time, cascades × instances evaluated per second, peak traced memory (tracemalloc,
numpy allocations included) and the process's peak RSS. Then a straightforward implementation of the paper
scheme, one cascade at a time (written here, METHOD §5.3–5.5), runs on all pair cascades and on an evenly
spaced subsample of the 4-provider cascades; its time is extrapolated to the full grid (and said so), its
costs are checked against the engine's for the same cascades, and the speed ratio is reported.

Usage: python benchmarks/bench_search.py [--data DIR] [--repeat 3] [--sample 150] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modelarb.core import paper
from modelarb.core.grid import BudgetGrid, cascade_curves, cascade_spend, cost_for_solve_rate, pass_curves
from modelarb.core.result import ArbitrageResult
from modelarb.data import Outcomes, load_market

Array = NDArray[np.float64]
PAIR = ["gpt5mini", "deepseek"]
FOUR = ["minicoder4b", "qwen3-coder-30b", "gpt5mini", "deepseek"]


@dataclass
class Case:
    name: str
    cascades: int
    instances: int
    levels: int
    seconds: float
    throughput: float  # cascades × instances per second
    peak_traced_mib: float
    max_margin: float
    max_margin_at: float
    naive_cascades_timed: int
    naive_seconds_timed: float
    naive_seconds_full: float  # extrapolated when only a subsample was timed
    naive_extrapolated: bool
    naive_max_rel_diff: float
    speedup: float


# --- the straightforward scheme: one cascade at a time, straight from METHOD §5.3–5.5 ---


def read_log(curves: Array, budgets: Array, x: Array) -> Array:
    """Per-instance curves (I, G) read at budgets x (Q,), linear in log b; 0 below the first grid budget."""
    log_b = np.log(budgets)
    log_x = np.log(np.maximum(x, budgets[0]))
    j = np.clip(np.searchsorted(log_b, log_x, side="right") - 1, 0, len(budgets) - 2)
    t = np.clip((log_x - log_b[j]) / (log_b[j + 1] - log_b[j]), 0.0, 1.0)
    return np.where(x < budgets[0], 0.0, curves[:, j] + t * (curves[:, j + 1] - curves[:, j]))


def naive_cost(curves: Array, budgets: Array, caps: Array, levels: Array) -> Array:
    """C_q(u) of one cascade (vectorised over instances, budgets and levels, nothing shared between cascades).

    Stage m gets min(τ_m, max(b − o_m, 0)) of the global budget b; E(b) = ∫(1 − P) with P linear in
    log b between grid points (from (0, P = 0) before the first), nothing bought beyond the last cap;
    C(u): log E read linearly against the (monotone) P.
    """
    offsets = np.concatenate([[0.0], np.cumsum(caps)[:-1]])
    unsolved = np.ones_like(curves[:, 0, :])
    for m, cap in enumerate(caps):
        x = np.minimum(cap, np.maximum(budgets - offsets[m], 0.0))
        unsolved = unsolved * (1.0 - read_log(curves[:, m, :], budgets, x))
    solve = 1.0 - unsolved.mean(axis=0)
    b0, b1, p0, p1 = budgets[:-1], budgets[1:], solve[:-1], solve[1:]
    integral_p = p0 * (b1 - b0) + (p1 - p0) * (b1 - (b1 - b0) / np.log(b1 / b0))
    step = np.where(b1 <= caps.sum(), b1 - b0 - integral_p, 0.0)
    spend = budgets[0] * (1.0 - 0.5 * solve[0]) + np.concatenate([[0.0], np.cumsum(step)])
    p = np.maximum.accumulate(solve)
    idx = np.searchsorted(p, levels, side="right") - 1
    j = np.clip(idx, 0, len(p) - 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(p[j + 1] > p[j], (levels - p[j]) / (p[j + 1] - p[j]), 0.0)
    t = np.where(idx < 0, 0.0, np.clip(t, 0.0, 1.0))
    log_e = np.log(np.maximum(spend, 1e-300))
    cost = np.exp(log_e[j] + t * (log_e[j + 1] - log_e[j]))
    return np.where(levels > p[-1] + 1e-12, np.inf, cost)


def engine_costs(curves: Array, budgets: Array, caps: Array, levels: Array) -> Array:
    solve, stage_at = cascade_curves(curves, budgets, caps)
    return cost_for_solve_rate(solve, cascade_spend(solve, budgets, stage_at), levels)


def max_rel_diff(a: Array, b: Array) -> float:
    if not np.array_equal(np.isfinite(a), np.isfinite(b)):
        return float("inf")
    finite = np.isfinite(a)
    return float(np.max(np.abs(a[finite] - b[finite]) / np.maximum(np.abs(b[finite]), 1e-300), initial=0.0))


# --- measuring ---


def best_time(run: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - start)
    return min(times), out


def peak_traced(run: Callable[[], Any]) -> float:
    tracemalloc.start()
    tracemalloc.reset_peak()
    run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def bench(
    name: str,
    outcomes: Outcomes,
    levels: Array,
    caps: Array,
    select: paper.Selection,
    grid: BudgetGrid,
    repeat: int,
    sample: int | None,
) -> Case:
    def run() -> ArbitrageResult:
        return paper.grid_search(outcomes, levels, caps, select, grid)

    seconds, result = best_time(run, repeat)
    traced = peak_traced(run)
    budgets = grid.budgets
    curves = pass_curves(outcomes, budgets)
    rows = np.arange(len(caps)) if sample is None else np.unique(np.linspace(0, len(caps) - 1, sample).astype(int))
    start = time.perf_counter()
    naive = np.stack([naive_cost(curves, budgets, caps[k], levels) for k in rows])
    naive_timed = time.perf_counter() - start
    naive_full = naive_timed * len(caps) / len(rows)
    return Case(
        name=name,
        cascades=len(caps),
        instances=outcomes.n_instances,
        levels=len(levels),
        seconds=seconds,
        throughput=len(caps) * outcomes.n_instances / seconds,
        peak_traced_mib=traced,
        max_margin=result.max_margin,
        max_margin_at=result.max_margin_at,
        naive_cascades_timed=len(rows),
        naive_seconds_timed=naive_timed,
        naive_seconds_full=naive_full,
        naive_extrapolated=len(rows) < len(caps),
        naive_max_rel_diff=max_rel_diff(naive, engine_costs(curves, budgets, caps[rows], levels)),
        speedup=naive_full / seconds,
    )


def report(case: Case) -> str:
    naive = (
        f"{case.naive_seconds_full:.1f} s, extrapolated from {case.naive_cascades_timed} evenly spaced cascades "
        f"timed in {case.naive_seconds_timed:.2f} s"
        if case.naive_extrapolated
        else f"{case.naive_seconds_full:.2f} s (all {case.naive_cascades_timed} cascades timed)"
    )
    return "\n".join(
        [
            f"{case.name}: {case.cascades:,} cascades × {case.instances} instances × {case.levels} levels",
            f"  engine      {case.seconds:.3f} s (best of repeats) · {case.throughput:,.0f} cascade-instances/s · "
            f"peak traced {case.peak_traced_mib:.0f} MiB",
            f"  result      max margin {100 * case.max_margin:.1f}% at u = {case.max_margin_at:.4f}",
            f"  per-cascade {naive}",
            f"  ratio       {case.speedup:,.0f}× faster; costs agree to {case.naive_max_rel_diff:.1e} relative",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = Path(os.environ["MODELARB_DATA"]) / "swebench" if "MODELARB_DATA" in os.environ else None
    parser.add_argument("--data", type=Path, default=default, help="the swebench folder [$MODELARB_DATA/swebench]")
    parser.add_argument("--repeat", type=int, default=3, help="engine timings per case; the best is kept")
    parser.add_argument("--sample", type=int, default=150, help="4-provider cascades the per-cascade code times")
    parser.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    args = parser.parse_args()
    if args.data is None:
        parser.error("give --data DIR (the swebench folder) or set MODELARB_DATA")

    pair, _ = load_market(args.data, PAIR)
    four, _ = load_market(args.data, FOUR)
    settings = paper.PaperSettings.for_unit(pair.unit)
    rss_loaded = rss_mib()
    pair_levels = np.linspace(0.68, paper.best_solve_rate(pair, settings.market_grid), 1000)
    four_levels = np.linspace(0.40, paper.best_solve_rate(four, settings.market_grid), 100)
    cases = [
        bench("pair", pair, pair_levels, settings.pair_caps(), "mean_margin", settings.grid, args.repeat, None),
        bench("four", four, four_levels, settings.stage_caps(4), "per_level", settings.grid, args.repeat, args.sample),
    ]
    environment = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpus": os.cpu_count(),
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "rss_after_loading_mib": round(rss_loaded, 1),
        "peak_rss_mib": round(rss_mib(), 1),
    }
    print("\n\n".join(report(case) for case in cases))
    print(
        f"\nprocess: peak RSS {environment['peak_rss_mib']} MiB ({environment['rss_after_loading_mib']} MiB after "
        f"imports and loading the data) · {environment['cpus']} CPUs · load average {environment['load_average']} · "
        f"numpy {environment['numpy']} · OpenBLAS threads {environment['openblas_threads']}"
    )
    if args.json:
        args.json.write_text(json.dumps({"cases": [asdict(c) for c in cases], "environment": environment}, indent=2))


if __name__ == "__main__":
    main()
