"""Benchmark of the broker's overhead over the provider calls it makes, on the replay market, in one run.

Measures, in one process:
  (a) direct: `ProviderClient.call` to the replay market on loopback (latency p50/p99 over --calls calls);
  (b) runner: tasks run by one in-process `TaskRunner` (no HTTP API, no other worker) on each database
      given: for each task, `runner.run(task_id)` wall time minus the sum of its calls' `Attempt.latency_ms`,
      divided by its number of calls, is the broker's overhead per call (reservations, settlements,
      verification, reads, state changes); p50/p99 over tasks and the ratio to the direct call's p50;
  (c) end to end: `modelarb replay run` (the live check) through the HTTP API with the broker's workers,
      tasks/s and latency at --concurrency.
The market is synthetic (two providers, 60 instances × 16 attempts) unless MODELARB_DATA is set: then
GPT-5 mini and DeepSeek v3.2 on SWE-bench, with the plan at solve rate 0.74.

Usage: python benchmarks/bench_broker.py [--calls 500] [--tasks 300] [--e2e-tasks 600] [--concurrency 32]
       [--workers 8] [--postgres URL] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelarb.cli.options import market
from modelarb.core.plan import Plan, fit
from modelarb.core.search import best_solve_rate
from modelarb.data.outcomes import Outcomes, from_cells
from modelarb.service.admission import TaskRequest, submit_task
from modelarb.service.broker import Broker, BrokerSettings
from modelarb.service.keys import ensure_customer
from modelarb.service.money import to_micro
from modelarb.service.providers import ProviderClient
from modelarb.service.replay.check import run_check, serve_in_thread, task_body
from modelarb.service.replay.market import create_replay_app, replay_providers_toml
from modelarb.service.settings import load_providers
from modelarb.service.store.engine import Store
from modelarb.service.store.tables import Attempt
from modelarb.service.tasks import TaskRunner

REPLAY_KEY = b"bench-broker-replay-key"


def synthetic_market(instances: int = 60, attempts: int = 16, seed: int = 7) -> Outcomes:
    """A cheap weak provider and a dear strong one on instances of shared difficulty."""
    rng = np.random.default_rng(seed)
    difficulty = rng.uniform(0, 1, instances)
    skill = {"cheap": np.clip(0.95 - 1.1 * difficulty, 0, 1), "strong": np.clip(1.1 - 0.9 * difficulty, 0, 1)}
    price = {"cheap": (0.001, 0.004), "strong": (0.01, 0.03)}
    cells = {
        p: {
            f"inst-{i:03d}": (rng.random(attempts) < skill[p][i], float(rng.uniform(*price[p])))
            for i in range(instances)
        }
        for p in ("cheap", "strong")
    }
    return from_cells(cells, ["cheap", "strong"], "USD", "synthetic")


def market_and_plan() -> tuple[Outcomes, Plan, str]:
    root = os.environ.get("MODELARB_DATA")
    if root:
        outcomes = market(Path(root) / "swebench", "gpt5mini,deepseek")
        return outcomes, fit(outcomes, target_solve_rate=0.74), "SWE-bench: gpt5mini, deepseek at 0.74"
    outcomes = synthetic_market()
    plan = fit(outcomes, target_solve_rate=0.9 * best_solve_rate(outcomes, "exact"))
    return outcomes, plan, f"synthetic: cheap, strong at {plan.solve_rate:.3f}"


def quantiles(values: list[float]) -> dict[str, float]:
    p50, p99 = np.percentile(np.asarray(values, dtype=float), [50, 99])
    return {"p50": float(p50), "p99": float(p99), "mean": float(np.mean(values))}


@dataclass
class Row:
    """One line of the table: what was timed, in milliseconds per call unless said."""

    what: str
    n: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    ratio_to_direct_p50: float | None = None
    note: str = ""


def direct_calls(url: str, providers_path: Path, outcomes: Outcomes, calls: int) -> list[float]:
    """Latencies (ms, as ProviderClient measures them) of `calls` replay calls on random instances."""
    configs = load_providers(providers_path)
    rng = random.Random(0)
    instances = [str(i) for i in outcomes.instances.tolist()]
    latencies = []
    clients = {name: ProviderClient(config) for name, config in configs.items()}
    try:
        names = sorted(clients)
        for k in range(calls + 20):  # the first 20 warm the connections up
            instance = rng.choice(instances)
            outcome = clients[names[k % len(names)]].call(
                task_body(instance, 1)["messages"],
                max_tokens=configs[names[k % len(names)]].max_tokens,
                call_id=uuid.uuid4().hex,
                metadata={"task": uuid.uuid4().hex, "attempt": "0", "instance": instance},
            )
            if not outcome.ok:
                raise RuntimeError(f"a direct call failed: {outcome.error}")
            if k >= 20:
                latencies.append(outcome.latency_s * 1000)
    finally:
        for client in clients.values():
            client.close()
    return latencies


def runner_overhead(
    db_url: str, plan: Plan, providers_path: Path, outcomes: Outcomes, tasks: int
) -> tuple[list[float], list[float], int, float]:
    """Per task: (wall − Σ call latency) / calls in ms, the calls' latencies; total calls; tasks/s of the runner."""
    store = Store.open(db_url)
    broker = Broker(store, plan, load_providers(providers_path), BrokerSettings(workers=0, replay_key=REPLAY_KEY))
    try:
        customer = ensure_customer(store, f"bench-{uuid.uuid4().hex[:8]}")
        runner = TaskRunner(broker.setup, broker.worker_id, random.Random(1))
        price = broker.terms.price_micro("per_task")
        rng = random.Random(2)
        instances = [str(i) for i in outcomes.instances.tolist()]
        overheads, call_latencies, n_calls, busy = [], [], 0, 0.0
        for k in range(tasks + 5):  # the first 5 warm up
            body = task_body(rng.choice(instances), price)
            request = TaskRequest(
                body["messages"], body["verifier"], body["max_price"], None, "per_task", body["instance"], {}
            )
            submit_task(store, broker.terms, customer, request, None, broker.rng)
            task_id = runner.claim()
            assert task_id is not None
            started = time.perf_counter()
            runner.run(task_id)
            wall_ms = (time.perf_counter() - started) * 1000
            with store.reading() as session:
                latencies = [a.latency_ms or 0.0 for a in session.query(Attempt).filter(Attempt.task_id == task_id)]
            if k < 5 or not latencies:
                continue
            overheads.append((wall_ms - sum(latencies)) / len(latencies))
            call_latencies += latencies
            n_calls += len(latencies)
            busy += wall_ms / 1000
        return overheads, call_latencies, n_calls, len(overheads) / busy
    finally:
        broker.stop()
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=500, help="direct provider calls timed")
    parser.add_argument("--tasks", type=int, default=300, help="tasks run by the in-process runner per database")
    parser.add_argument("--e2e-tasks", type=int, default=600, help="tasks through the HTTP API (0: skip)")
    parser.add_argument("--concurrency", type=int, default=32, help="customers in flight end to end")
    parser.add_argument("--workers", type=int, default=8, help="broker workers end to end")
    parser.add_argument("--postgres", help="also run the runner on this (empty) PostgreSQL database URL")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    outcomes, plan, label = market_and_plan()
    max_tokens = max(to_micro(sum(cascade.caps)) for cascade in plan.cascades) + 1
    rows: list[Row] = []
    extra: dict[str, Any] = {}
    served = serve_in_thread(create_replay_app(outcomes, REPLAY_KEY))
    try:
        with tempfile.TemporaryDirectory(prefix="bench-broker-") as folder:
            providers_path = Path(folder) / "providers.toml"
            providers_path.write_text(replay_providers_toml(None, served.url, plan.providers, max_tokens))
            direct = quantiles(direct_calls(served.url, providers_path, outcomes, args.calls))
            rows.append(Row("(a) direct ProviderClient.call", args.calls, direct["p50"], direct["p99"], direct["mean"]))
            databases = [("SQLite", f"sqlite:///{Path(folder) / 'bench.sqlite3'}")]
            if args.postgres:
                databases.append(("PostgreSQL", args.postgres))
            for name, url in databases:
                overheads, latencies, n_calls, rate = runner_overhead(url, plan, providers_path, outcomes, args.tasks)
                in_runner = quantiles(latencies)
                over = quantiles(overheads)
                rows.append(
                    Row(
                        f"(b) {name}: call latency inside the runner",
                        n_calls,
                        in_runner["p50"],
                        in_runner["p99"],
                        in_runner["mean"],
                        in_runner["p50"] / direct["p50"],
                    )
                )
                rows.append(
                    Row(
                        f"(b) {name}: broker overhead per call",
                        len(overheads),
                        over["p50"],
                        over["p99"],
                        over["mean"],
                        over["p50"] / direct["p50"],
                        f"{n_calls / len(overheads):.2f} calls/task; one worker runs {rate:.1f} tasks/s",
                    )
                )
    finally:
        served.stop()
    if args.e2e_tasks:
        check = run_check(plan, outcomes, tasks=args.e2e_tasks, concurrency=args.concurrency, workers=args.workers)
        lat = check.latency_s
        rows.append(
            Row(
                "(c) HTTP API end to end, task admitted to final (s × 1000)",
                check.tasks,
                lat["p50"] * 1000,
                lat["p99"] * 1000,
                float("nan"),
                None,
                f"{check.throughput:.1f} tasks/s at concurrency {args.concurrency}, {args.workers} workers; "
                f"ledger balanced: {check.ledger_balanced}",
            )
        )
        extra["end_to_end"] = check.to_dict()

    print(
        f"market: {label}; python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'what':58} {'n':>6} {'p50 ms':>9} {'p99 ms':>9} {'mean ms':>9} {'p50/direct':>10}  note")
    for row in rows:
        ratio = "" if row.ratio_to_direct_p50 is None else f"{row.ratio_to_direct_p50:.2f}×"
        mean = "" if row.mean_ms != row.mean_ms else f"{row.mean_ms:9.2f}"
        print(f"{row.what:58} {row.n:6d} {row.p50_ms:9.2f} {row.p99_ms:9.2f} {mean:>9} {ratio:>10}  {row.note}")
    if args.json:
        args.json.write_text(json.dumps({"market": label, "rows": [asdict(r) for r in rows], **extra}, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
