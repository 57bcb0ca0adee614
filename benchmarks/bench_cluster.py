"""Speed-up of a search split by first-stage provider: serial against local processes (and Dask), one run.

    python benchmarks/bench_cluster.py [--providers 25] [--instances 500] [--depth 3] [--parts 8] [--workers 2]
                                       [--dask] [--json FILE]

On a synthetic leaderboard market (markets.py) it times, in this order and in one process: the
unsplit search; the split search run serially (`SerialExecutor`); the split search on `--workers`
local processes (`ProcessExecutor`, processes started inside the timing); with `--dask`, on a
`LocalCluster` of `--workers` single-threaded worker processes (started before the timing), once as
Dask starts them and once without the MALLOC_TRIM_THRESHOLD_ its nanny sets (see docs/cluster.md).
It reports wall time, the CPU time of this process and of its finished children (Dask: of its
workers), checks that every split run gives the same numbers bit for bit, and the speed-up of each
against the serial split run (wall time; never more than the cores used). On a loaded machine wall
times mostly measure the load, so it also reports each part's CPU time in the serial split run and
the wall time the split run would take on `--workers` idle cores: what it does before the parts (a
proof's shared start), then the parts handed out in part order to whichever worker is free first (as
both executors do). Set OMP_NUM_THREADS=1 so that BLAS does not add threads.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from markets import leaderboard
from modelarb.core.exact import exact_search
from modelarb.core.partition import Partition, partitioned_search
from modelarb.core.result import ArbitrageResult
from modelarb.core.search import best_solve_rate
from modelarb.parallel import DaskExecutor, Executor, Part, ProcessExecutor

R = TypeVar("R")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(run: Callable[[], ArbitrageResult]) -> tuple[dict[str, float], ArbitrageResult]:
    wall, cpu, children = time.perf_counter(), time.process_time(), _children_cpu()
    result = run()
    return {
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "children_cpu_s": _children_cpu() - children,
    }, result


@dataclass
class _PartTimes:
    """A serial executor that records each part's CPU time."""

    seconds: list[float] = field(default_factory=list)

    def map_chunks(self, fn: Callable[..., R], shared: Any, parts: Sequence[Part]) -> Iterator[tuple[int, R]]:
        for k, part in enumerate(parts):
            start = time.process_time()
            result = fn(shared, *part)
            self.seconds.append(time.process_time() - start)
            yield k, result


def _idle_wall(seconds: list[float], workers: int) -> float:
    """When the last part ends if each part, in order, goes to the first free worker."""
    free = [0.0] * workers
    for s in seconds:
        k = free.index(min(free))
        free[k] += s
    return max(free)


def _same(a: ArbitrageResult, b: ArbitrageResult) -> bool:
    fields = ("arbitrage_cost", "spend", "cascade_at", "partner_at", "partner_weight")
    return a.cascades == b.cascades and all(np.array_equal(getattr(a, f), getattr(b, f)) for f in fields)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--providers", type=int, default=25)
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--parts", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dask", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    outcomes = leaderboard(args.providers, args.instances)
    levels = np.linspace(0.05, best_solve_rate(outcomes), 1000)
    rows: list[dict[str, Any]] = []

    def split(executor: Executor) -> Callable[[], ArbitrageResult]:
        return lambda: partitioned_search(outcomes, levels, Partition(executor, args.parts), max_depth=args.depth)

    times, whole = _timed(lambda: exact_search(outcomes, levels, max_depth=args.depth))
    rows.append({"run": "unsplit search, this process", **times, "method": whole.method})
    parts = _PartTimes()
    times, serial = _timed(split(parts))
    rows.append({"run": f"split into {args.parts} parts, serially", **times, "method": serial.method})
    times, local = _timed(split(ProcessExecutor(args.workers)))
    rows.append({"run": f"split, {args.workers} local processes", **times, "same": _same(local, serial)})
    if args.dask:
        import dask
        from distributed import Client, LocalCluster

        environ = dask.config.get("distributed.nanny.pre-spawn-environ")
        untrimmed = {k: v for k, v in environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
        for label, env in (("", environ), (", no MALLOC_TRIM_THRESHOLD_", untrimmed)):
            with (
                dask.config.set({"distributed.nanny.pre-spawn-environ": env}),
                LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=None) as cluster,
                Client(cluster) as client,
            ):
                before = sum(client.run(time.process_time).values())
                times, dask_result = _timed(split(DaskExecutor(cluster.scheduler_address)))
                times["children_cpu_s"] = sum(client.run(time.process_time).values()) - before  # the workers'
            rows.append({"run": f"split, Dask: {args.workers} processes{label}", **times})
            rows[-1]["same"] = _same(dask_result, serial)
    base = rows[1]["wall_s"]
    print(f"{args.providers} providers × {args.instances} instances, depth ≤ {args.depth}, {args.parts} parts")
    print(f"{'run':<52} {'wall s':>8} {'cpu s':>8} {'child cpu s':>11} {'speed-up':>9}  same")
    for row in rows:
        speed = base / row["wall_s"]
        print(
            f"{row['run']:<52} {row['wall_s']:8.2f} {row['cpu_s']:8.2f} {row['children_cpu_s']:11.2f} "
            f"{speed:8.2f}×  {row.get('same', '')}"
        )
    for row in rows[:2]:
        print(f"{row['run']}: {row['method']}")
    before_parts = rows[1]["cpu_s"] - sum(parts.seconds)  # what the caller does first: a proof's shared start
    idle = before_parts + _idle_wall(parts.seconds, args.workers)
    print(
        "CPU s per part: " + ", ".join(f"{s:.2f}" for s in parts.seconds) + f", after {before_parts:.2f} s in "
        f"this process (a proof's shared start); on {args.workers} idle cores the split run would take {idle:.2f} s: "
        f"{rows[1]['cpu_s'] / idle:.2f}× its serial CPU time, {rows[0]['cpu_s'] / idle:.2f}× the unsplit search's"
    )
    max_gap = float(np.nanmax(np.abs(serial.arbitrage_cost / whole.arbitrage_cost - 1)))
    print(f"largest relative difference split vs unsplit: {max_gap:.3g}")
    if args.json:
        payload = {"args": vars(args) | {"json": str(args.json)}, "rows": rows, "part_cpu_s": parts.seconds}
        args.json.write_text(json.dumps(payload, indent=1))


if __name__ == "__main__":
    main()
