"""Time the robust-arbitrage reference set: 3 domain pairs x 7 fit budgets x N bootstraps.

Runs the pairs of METHOD §6 on GPT-5 mini then DeepSeek v3.2 with the chosen executor,
prints the mean margins beside the paper's, the total wall time, and the cost of one
bootstrap (all 7 budgets): wall time per bootstrap, and CPU time per bootstrap measured
serially on a sample in the same run (so the ratio is the parallel speed-up).

    python benchmarks/bench_robust.py --data $MODELARB_DATA/swebench [--bootstraps 1000]
        [--executor processes|serial] [--cluster tcp://HOST:PORT] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

from modelarb.data import load_market
from modelarb.robust import PAPER_FIT_BUDGETS, RobustResult, SerialExecutor, executor_for, run

PAIRS = (("all", "all"), ("not-django", "django"), ("django", "not-django"))
REFERENCE = {  # the paper's mean evaluation margins (%) at $1 / $10 / $100 / $1000
    ("all", "all"): (2.4, 18.6, 22.2, 23.9),
    ("not-django", "django"): (2.1, 21.0, 24.8, 28.8),
    ("django", "not-django"): (1.7, 12.4, 12.0, 11.9),
}
REFERENCE_BUDGETS = (1.0, 10.0, 100.0, 1000.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = Path(os.environ.get("MODELARB_DATA", ".")) / "swebench"
    parser.add_argument("--data", type=Path, default=default_data, help="SWE-bench folder of <provider>.jsonl")
    parser.add_argument("--bootstraps", type=int, default=1000)
    parser.add_argument("--executor", default="processes", choices=("processes", "serial"))
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--cluster", default=None, help="Dask scheduler address (tcp://HOST:PORT)")
    parser.add_argument("--serial-sample", type=int, default=20, help="bootstraps per pair timed serially")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    outcomes, _ = load_market(args.data, ["gpt5mini", "deepseek"])
    executor = executor_for(args.executor, args.cluster, args.workers)

    load_before = os.getloadavg()[0]
    start, cpu_start = time.perf_counter(), cpu_seconds()
    results: dict[tuple[str, str], RobustResult] = {}
    for fit, evaluate in PAIRS:
        results[(fit, evaluate)] = run(
            outcomes, fit, evaluate, PAPER_FIT_BUDGETS, args.bootstraps, args.seed, executor=executor
        )
    total, cpu_total = time.perf_counter() - start, cpu_seconds() - cpu_start
    n_boot = len(PAIRS) * args.bootstraps

    serial_start = time.process_time()
    for fit, evaluate in PAIRS:
        run(outcomes, fit, evaluate, PAPER_FIT_BUDGETS, args.serial_sample, args.seed, executor=SerialExecutor())
    serial = (time.process_time() - serial_start) / (len(PAIRS) * args.serial_sample)

    columns = [PAPER_FIT_BUDGETS.index(b) for b in REFERENCE_BUDGETS]
    print(f"{'pair':<26} {'fit budget':>10} {'mean':>7} {'paper':>7} {'diff':>6} {'p5':>6} {'p95':>6}")
    report: dict[str, object] = {}
    for pair, result in results.items():
        name = f"{pair[0]} -> {pair[1]}"
        for col, paper in zip(columns, REFERENCE[pair], strict=True):
            mean, p5, p95 = (100 * float(v[col]) for v in (result.mean, result.p5, result.p95))
            budget = f"${PAPER_FIT_BUDGETS[col]:g}"
            print(f"{name:<26} {budget:>10} {mean:7.1f} {paper:7.1f} {mean - paper:+6.1f} {p5:6.1f} {p95:6.1f}")
        report[name] = {
            "fit_budgets": list(PAPER_FIT_BUDGETS),
            "mean": result.mean.tolist(),
            "p5": result.p5.tolist(),
            "p95": result.p95.tolist(),
        }
    per_boot = total / n_boot
    print(
        f"\n{len(PAIRS)} pairs x {len(PAPER_FIT_BUDGETS)} fit budgets x {args.bootstraps} bootstraps "
        f"({type(executor).__name__}, {os.cpu_count()} cores, load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after): {total:.1f} s wall, {cpu_total:.1f} s CPU (with workers)"
    )
    print(
        f"per bootstrap (7 fits): {1e3 * per_boot:.1f} ms wall, {1e3 * cpu_total / n_boot:.1f} ms CPU; "
        f"serially {1e3 * serial:.1f} ms CPU (speed-up over serial CPU: {serial / per_boot:.2f}x)"
    )
    if args.json:
        report["total_seconds"] = total
        report["cpu_seconds"] = cpu_total
        report["wall_ms_per_bootstrap"] = 1e3 * per_boot
        report["serial_cpu_ms_per_bootstrap"] = 1e3 * serial
        report["bootstraps"] = args.bootstraps
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


if __name__ == "__main__":
    main()
