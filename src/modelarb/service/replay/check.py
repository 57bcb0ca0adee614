"""The live check: serve a plan over its replay market, buy tasks as customers would, and compare with the plan.

`run_check` submits tasks over HTTP to a broker (one it starts in this process over the replay
market, or one given by URL), each on an instance drawn at random from the market, waits for
every task to end, and sets what was realised (solve rate, spend, revenue and margin per task,
each with a 95% confidence interval) beside what the plan predicts under its live cap rule.
`summarise` does the statistics alone, from the tasks' records.
"""

from __future__ import annotations

import asyncio
import math
import os
import secrets
import socket
import ssl
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

import modelarb
from modelarb.core.live import live_instances
from modelarb.core.plan import Plan, fingerprint
from modelarb.data.outcomes import Outcomes
from modelarb.errors import ServiceError
from modelarb.service import reports
from modelarb.service.admission import plan_id_of
from modelarb.service.api.app import create_app
from modelarb.service.broker import Broker, BrokerSettings
from modelarb.service.keys import create_key
from modelarb.service.loopback import serve_in_thread
from modelarb.service.money import MICRO, to_micro
from modelarb.service.replay.market import create_replay_app, replay_providers_toml
from modelarb.service.settings import load_providers
from modelarb.service.states import FINAL, PER_TASK, SOLVED
from modelarb.service.store.engine import Store

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile
MARGIN_METHOD = "delta"
SUBMIT_RETRIES = 5
FIRST_POLL_S, MAX_POLL_S, POLL_FRACTION = 0.05, 1.0, 1.0


# --- statistics -------------------------------------------------------------------------------


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a proportion: `successes` of `n` (n > 0)."""
    if n <= 0:
        raise ValueError("a proportion needs at least one trial")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(centre - half, 0.0), min(centre + half, 1.0)


def mean_interval(values: Sequence[float], z: float = Z95) -> tuple[float, float, float]:
    """(mean, low, high): the normal approximation with the sample standard deviation."""
    array = np.asarray(values, dtype=float)
    mean = float(array.mean())
    half = z * float(array.std(ddof=1)) / math.sqrt(array.size) if array.size > 1 else 0.0
    return mean, mean - half, mean + half


def margin_interval(revenue: Sequence[float], spend: Sequence[float], z: float = Z95) -> tuple[float, float, float]:
    """(margin, low, high) of the ratio margin 1 − Σspend/Σrevenue, by the delta method.

    The ratio r = mean(spend)/mean(revenue) has standard error sd(spend_i − r·revenue_i)/(√n·mean(revenue));
    the margin's interval is 1 − r ± z·se. NaNs when there is no revenue.
    """
    r_values, s_values = np.asarray(revenue, dtype=float), np.asarray(spend, dtype=float)
    mean_revenue = float(r_values.mean())
    if mean_revenue <= 0:
        return math.nan, math.nan, math.nan
    ratio = float(s_values.mean()) / mean_revenue
    residual = s_values - ratio * r_values
    se = float(residual.std(ddof=1)) / (math.sqrt(r_values.size) * mean_revenue) if r_values.size > 1 else 0.0
    return 1 - ratio, 1 - ratio - z * se, 1 - ratio + z * se


def percentiles(values: Sequence[float], levels: Sequence[int] = (50, 90, 99)) -> dict[str, float]:
    """{"p50": …, "p90": …, "p99": …} (linear interpolation between order statistics)."""
    points = np.percentile(np.asarray(values, dtype=float), list(levels))
    return {f"p{level}": float(value) for level, value in zip(levels, points, strict=True)}


@dataclass(frozen=True)
class Figure:
    """A realised figure with its 95% confidence interval, beside the plan's prediction."""

    realised: float
    low: float
    high: float
    predicted: float
    predicted_on_draw: float | None = None

    @property
    def covers(self) -> bool:
        """Whether the prediction lies inside the realised 95% interval."""
        return self.low <= self.predicted <= self.high

    def to_dict(self) -> dict[str, Any]:
        def number(value: float) -> float | None:
            return value if math.isfinite(value) else None

        return {
            "realised": number(self.realised),
            "ci95": [number(self.low), number(self.high)],
            "predicted": number(self.predicted),
            "inside_ci": self.covers,
            "predicted_on_drawn_instances": None if self.predicted_on_draw is None else number(self.predicted_on_draw),
        }


@dataclass(frozen=True)
class TaskRecord:
    """One task as its customer saw it: instance, final state, money in micro-units, submit-to-final seconds."""

    instance: str
    state: str
    spend_micro: int
    charged_micro: int
    latency_s: float


@dataclass(frozen=True)
class LiveCheck:
    """What a live run realised beside what the plan predicted. Money is per task, in `cost_unit`."""

    tasks: int
    cost_unit: str
    price: float
    solve_rate: Figure
    spend: Figure
    revenue: Figure
    margin: Figure
    states: dict[str, int]
    wall_s: float
    throughput: float
    latency_s: dict[str, float]
    concurrency: int
    seed: int
    broker: str
    same_data_as_fit: bool
    ledger_balanced: bool | None = None
    ledger_problems: tuple[str, ...] = field(default_factory=tuple)
    margin_method: str = MARGIN_METHOD

    @property
    def predictions_inside(self) -> bool:
        """Whether the plan's solve rate and spend per task lie inside their realised intervals."""
        return self.solve_rate.covers and self.spend.covers

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (the keys `modelarb replay run --json` writes)."""
        return {
            "tasks": self.tasks,
            "cost_unit": self.cost_unit,
            "price": self.price,
            "solve_rate": self.solve_rate.to_dict(),
            "spend_per_task": self.spend.to_dict(),
            "revenue_per_task": self.revenue.to_dict(),
            "margin": {**self.margin.to_dict(), "method": self.margin_method},
            "states": dict(self.states),
            "wall_s": self.wall_s,
            "throughput_per_s": self.throughput,
            "latency_s": dict(self.latency_s),
            "concurrency": self.concurrency,
            "seed": self.seed,
            "broker": self.broker,
            "same_data_as_fit": self.same_data_as_fit,
            "ledger": {"balanced": self.ledger_balanced, "problems": list(self.ledger_problems)},
        }


def _in_units(micro: tuple[float, float, float]) -> tuple[float, float, float]:
    mean, low, high = micro
    return mean / MICRO, low / MICRO, high / MICRO


def summarise(
    records: Sequence[TaskRecord],
    plan: Plan,
    price_micro: int,
    wall_s: float,
    *,
    concurrency: int,
    seed: int,
    broker: str,
    same_data_as_fit: bool,
    ledger_problems: Sequence[str] | None = None,
    on_draw: tuple[float, float] | None = None,
) -> LiveCheck:
    """The realised figures of `records` (all final) beside the plan's live predictions at `price_micro` per task.

    `on_draw`: the plan's expected (solve rate, spend per task) on the very instances the tasks drew.
    """
    if not records:
        raise ServiceError("the live check needs at least one task")
    if plan.live is None:
        raise ServiceError("the plan has no live figures to check; refit it with `modelarb plan fit`")
    n = len(records)
    solved = sum(record.state == SOLVED for record in records)
    low, high = wilson_interval(solved, n)
    spend_micro = [record.spend_micro for record in records]
    revenue_micro = [record.charged_micro for record in records]
    price = price_micro / MICRO
    predicted_margin = (price - plan.live.spend) / price if price > 0 else math.nan
    return LiveCheck(
        tasks=n,
        cost_unit=plan.cost_unit,
        price=price,
        solve_rate=Figure(solved / n, low, high, plan.live.solve_rate, on_draw[0] if on_draw else None),
        spend=Figure(*_in_units(mean_interval(spend_micro)), plan.live.spend, on_draw[1] if on_draw else None),
        revenue=Figure(*_in_units(mean_interval(revenue_micro)), price),
        margin=Figure(*margin_interval(revenue_micro, spend_micro), predicted_margin),
        states=dict(sorted(Counter(record.state for record in records).items())),
        wall_s=wall_s,
        throughput=n / wall_s if wall_s > 0 else math.inf,
        latency_s=percentiles([record.latency_s for record in records]),
        concurrency=concurrency,
        seed=seed,
        broker=broker,
        same_data_as_fit=same_data_as_fit,
        ledger_balanced=None if ledger_problems is None else not ledger_problems,
        ledger_problems=tuple(ledger_problems or ()),
    )


@dataclass(frozen=True)
class LocalBroker:
    """A broker started by the live check: its URL, a customer's key, and its store (for the ledger check)."""

    url: str
    key: str
    store: Store


@contextmanager
def local_broker(
    outcomes: Outcomes, plan: Plan, *, workers: int, db: str | None, seed: int, agent_turns: int | None = None
) -> Iterator[LocalBroker]:
    """The replay market of `outcomes` and a broker serving `plan` over it, both on loopback, with a new customer.

    The database is a fresh SQLite file in a temporary folder unless `db` is given. With `agent_turns`, every
    attempt is an agent run (`replay.harness` through the broker's gateway) of a market serving each recorded
    attempt as that many calls.
    """
    key = secrets.token_bytes(32)
    # the caps, not the providers' max_tokens, must bound what an attempt may cost (a token costs one micro-unit)
    max_tokens = max(to_micro(sum(cascade.caps)) for cascade in plan.cascades) + 1
    with tempfile.TemporaryDirectory(prefix="modelarb-live-check-") as folder:
        market = serve_in_thread(create_replay_app(outcomes, key, seed=seed, turns=agent_turns or 1))
        try:
            providers_path = Path(folder) / "providers.toml"
            text = replay_providers_toml(None, market.url, plan.providers, max_tokens)
            agents: dict[str, Any] = {}
            port = 0
            if agent_turns is not None:
                text = text.replace("send_metadata = true", 'send_metadata = true\nattempt = "agent"')
                port = _free_port()
                agents = {
                    "agent_command": [sys.executable, "-m", "modelarb.service.replay.harness"],
                    "agent_readonly_paths": [str(Path(modelarb.__file__).resolve().parent.parent)],
                    "gateway_url": f"http://127.0.0.1:{port}/gateway/v1",
                }
            providers_path.write_text(text)
            store = Store.open(db or f"sqlite:///{Path(folder) / 'broker.sqlite3'}")
            try:
                settings = BrokerSettings(workers=workers, replay_key=key, **agents)
                broker = Broker(store, plan, load_providers(providers_path), settings)
                served = serve_in_thread(create_app(broker), port)
                try:
                    yield LocalBroker(served.url, create_key(store, f"live-check-{uuid.uuid4().hex[:12]}"), store)
                finally:
                    served.stop()
            finally:
                store.close()
        finally:
            market.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- customers --------------------------------------------------------------------------------


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or response.reason_phrase


def _refused(url: str, what: str, response: httpx.Response) -> ServiceError:
    if response.status_code in (401, 403):
        return ServiceError(
            f"the broker at {url} refused the key ({response.status_code}: {_error_text(response)}); "
            "give a customer's key with --key or $MODELARB_API_KEY"
        )
    return ServiceError(f"the broker at {url} refused {what} ({response.status_code}: {_error_text(response)})")


def _unreachable(url: str, exc: Exception) -> ServiceError:
    return ServiceError(f"cannot reach the broker at {url}: {exc or type(exc).__name__}; check --broker")


def quote_per_task(url: str, key: str, plan: Plan) -> int:
    """The per-task price the broker quotes, in micro-units; a ServiceError if it serves another plan."""
    try:
        response = httpx.post(
            f"{url.rstrip('/')}/v1/quotes",
            json={"charging": PER_TASK},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise _unreachable(url, exc) from None
    if response.status_code != 201:
        raise _refused(url, "a quote", response)
    try:
        quote = response.json()
        price_micro = int(quote["price_micro"])
    except (ValueError, KeyError, TypeError):
        raise ServiceError(f"{url} did not answer a quote as a modelarb broker does; check --broker") from None
    expected = plan_id_of(plan)
    if quote.get("plan_id") != expected:
        raise ServiceError(
            f"the broker at {url} serves plan {quote.get('plan_id')}, not the plan given ({expected}); "
            "give --plan the plan file the broker serves"
        )
    return price_micro


def task_body(instance: str, price_micro: int) -> dict[str, Any]:
    """A customer's task on a replay instance, verified by its signed outcome, paying the quoted price per task."""
    return {
        "messages": [{"role": "user", "content": f"Solve {instance}."}],
        "verifier": {"kind": "replay"},
        "instance": instance,
        "max_price": price_micro / MICRO,
        "charging": PER_TASK,
    }


async def _submit(client: httpx.AsyncClient, url: str, body: dict[str, Any], idempotency_key: str) -> str:
    """POST the task, retrying transport failures and 5xx with the same Idempotency-Key; the task's id."""
    for attempt in range(SUBMIT_RETRIES + 1):
        try:
            response = await client.post("/v1/tasks", json=body, headers={"Idempotency-Key": idempotency_key})
        except httpx.HTTPError as exc:
            if attempt == SUBMIT_RETRIES:
                raise _unreachable(url, exc) from None
        else:
            if response.status_code in (200, 202):
                return str(response.json()["id"])
            if response.status_code < 500 or attempt == SUBMIT_RETRIES:
                raise _refused(url, "a task", response)
        await asyncio.sleep(0.1 * 2**attempt)
    raise AssertionError("unreachable")


async def _final(client: httpx.AsyncClient, url: str, task_id: str, deadline: float) -> dict[str, Any]:
    """Poll the task until it is final, waiting as long as its age between polls (50 ms to 1 s)."""
    submitted = time.monotonic()
    failures = 0
    while True:
        await asyncio.sleep(min(max(POLL_FRACTION * (time.monotonic() - submitted), FIRST_POLL_S), MAX_POLL_S))
        try:
            response = await client.get(f"/v1/tasks/{task_id}")
        except httpx.HTTPError as exc:
            failures += 1
            if failures > SUBMIT_RETRIES:
                raise _unreachable(url, exc) from None
            continue
        if response.status_code != 200:
            raise _refused(url, f"reading task {task_id}", response)
        body: dict[str, Any] = response.json()
        if body["state"] in FINAL:
            return body
        if time.monotonic() > deadline:
            raise ServiceError(
                f"task {task_id} is still {body['state']} after the time allowed; is the broker working?"
            )


def _seconds_to_final(task: dict[str, Any]) -> float:
    """The broker's time from admitting the task to finishing it (its own clock, so no polling delay)."""
    created, finished = datetime.fromisoformat(task["created_at"]), datetime.fromisoformat(task["finished_at"])
    return (finished - created).total_seconds()


async def _customers(
    url: str,
    key: str,
    instances: Sequence[str],
    price_micro: int,
    concurrency: int,
    task_timeout_s: float,
    on_done: Callable[[TaskRecord], None] | None,
) -> tuple[list[TaskRecord], float]:
    run_id = uuid.uuid4().hex[:12]
    records: list[TaskRecord | None] = [None] * len(instances)
    next_index = iter(range(len(instances)))
    headers = {"Authorization": f"Bearer {key}"}
    tls = ssl.create_default_context()  # made once: each of the customers' clients would build its own
    started = time.perf_counter()
    last_final = started

    async def customer() -> None:
        # one connection per customer: one pool shared by all rescans its connections on every request
        async with httpx.AsyncClient(
            base_url=url, headers=headers, timeout=60, verify=tls, limits=httpx.Limits(max_connections=1)
        ) as client:
            await serve(client)

    async def serve(client: httpx.AsyncClient) -> None:
        nonlocal last_final
        for k in next_index:
            task_id = await _submit(client, url, task_body(instances[k], price_micro), f"live-{run_id}-{k}")
            task = await _final(client, url, task_id, time.monotonic() + task_timeout_s)
            last_final = max(last_final, time.perf_counter())
            record = TaskRecord(
                instance=instances[k],
                state=str(task["state"]),
                spend_micro=sum(int(attempt["cost_micro"]) for attempt in task["attempts"]),
                charged_micro=int(task["charged_micro"]),
                latency_s=_seconds_to_final(task),
            )
            records[k] = record
            if on_done is not None:
                on_done(record)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(concurrency, len(instances))):
                group.create_task(customer())
    except BaseExceptionGroup as failures:
        first = failures.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    return [record for record in records if record is not None], last_final - started


def submit_tasks(
    url: str,
    key: str,
    instances: Sequence[str],
    price_micro: int,
    *,
    concurrency: int,
    task_timeout_s: float = 600.0,
    on_done: Callable[[TaskRecord], None] | None = None,
) -> tuple[list[TaskRecord], float]:
    """Submit one task per instance, `concurrency` customers at a time, each waiting for its task to end.

    Returns the tasks' records (in submission order) and the wall time from the first submission
    to the last task seen final.
    """
    if concurrency < 1:
        raise ServiceError(f"the concurrency must be at least 1, got {concurrency}")
    return asyncio.run(_customers(url, key, instances, price_micro, concurrency, task_timeout_s, on_done))


def expected_on(plan: Plan, outcomes: Outcomes, instances: Sequence[str]) -> tuple[float, float]:
    """The plan's expected (solve rate, spend per task) under its live cap rule on these instances (repeats count).

    The plan's own figures average over every instance of the data it was fitted on; a random draw of
    instances differs from that average by sampling alone, which this separates from the broker.
    """
    attempt_cost = plan.require_live()
    solve, spend = np.zeros(outcomes.n_instances), np.zeros(outcomes.n_instances)
    for cascade, weight in zip(plan.cascades, plan.weights, strict=True):
        solved, stage_spend = live_instances(outcomes, cascade, attempt_cost)
        solve += weight * solved
        spend += weight * stage_spend.sum(axis=0)
    rows = {str(name): row for row, name in enumerate(outcomes.instances.tolist())}
    drawn = [rows[name] for name in instances]
    return float(solve[drawn].mean()), float(spend[drawn].mean())


def draw_instances(outcomes: Outcomes, tasks: int, seed: int) -> list[str]:
    """`tasks` instances drawn uniformly with replacement from the market (seeded)."""
    if tasks < 1:
        raise ServiceError(f"the number of tasks must be at least 1, got {tasks}")
    names = [str(name) for name in outcomes.instances.tolist()]
    picks = np.random.default_rng(seed).integers(0, len(names), size=tasks)
    return [names[k] for k in picks.tolist()]


def run_check(
    plan: Plan,
    outcomes: Outcomes,
    *,
    tasks: int = 2000,
    concurrency: int = 32,
    broker_url: str | None = None,
    key: str | None = None,
    workers: int = 8,
    db: str | None = None,
    seed: int = 0,
    task_timeout_s: float = 600.0,
    on_start: Callable[[int], None] | None = None,
    on_done: Callable[[TaskRecord], None] | None = None,
    agent_turns: int | None = None,
) -> LiveCheck:
    """Run `tasks` replay tasks through a broker serving `plan` and compare what they realised with the plan.

    Without `broker_url`, a replay market of `outcomes` and a broker over it are started on loopback
    (`workers` worker threads; database `db` or a fresh SQLite file) and the ledger is checked at the
    end. With it, tasks go to that broker with customer key `key` (default: $MODELARB_API_KEY).
    `on_start(tasks)` is called once the broker answers; `on_done(record)` after each task ends.
    `agent_turns` makes every attempt an agent run through the gateway (see `local_broker`).
    """
    plan.require_live()
    missing = sorted(set(plan.providers).difference(outcomes.providers))
    if missing:
        raise ServiceError(
            f"the data lacks the plan's provider(s) {', '.join(missing)}; give the data it was fitted on"
        )
    instances = draw_instances(outcomes, tasks, seed)
    same_data = fingerprint(outcomes) == plan.fitted_on.fingerprint
    on_draw = expected_on(plan, outcomes, instances)

    def run(url: str, customer_key: str) -> tuple[int, list[TaskRecord], float]:
        price_micro = quote_per_task(url, customer_key, plan)
        if on_start is not None:
            on_start(tasks)
        records, wall_s = submit_tasks(
            url,
            customer_key,
            instances,
            price_micro,
            concurrency=concurrency,
            task_timeout_s=task_timeout_s,
            on_done=on_done,
        )
        return price_micro, records, wall_s

    problems: list[str] | None = None
    if broker_url is not None:
        customer_key = key or os.environ.get("MODELARB_API_KEY")
        if not customer_key:
            raise ServiceError("give the broker's customer key with --key or $MODELARB_API_KEY")
        price_micro, records, wall_s = run(broker_url, customer_key)
    else:
        with local_broker(outcomes, plan, workers=workers, db=db, seed=seed, agent_turns=agent_turns) as local:
            price_micro, records, wall_s = run(local.url, local.key)
            problems = reports.check(local.store)
    return summarise(
        records,
        plan,
        price_micro,
        wall_s,
        concurrency=concurrency,
        seed=seed,
        broker=broker_url or "started",
        same_data_as_fit=same_data,
        ledger_problems=problems,
        on_draw=on_draw,
    )
