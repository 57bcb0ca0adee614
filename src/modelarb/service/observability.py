"""What the broker shows of itself: Prometheus metrics and structured JSON logs carrying the task id.

Counts that live in the database (tasks by state, attempts and spend by provider, reservations
outstanding) are read at scrape time, so every broker process on one database reports the same
books; what only a process sees (call latencies, retries, budget refusals) is counted in it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from modelarb.service.money import from_micro
from modelarb.service.store.engine import Store
from modelarb.service.store.tables import Attempt, Call, Task

current_task: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_task", default=None)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    """One broker's metrics registry (not the global one: several brokers may live in one process)."""

    def __init__(self, store: Store) -> None:
        self.registry = CollectorRegistry()
        self.call_latency = Histogram(
            "modelarb_call_latency_seconds",
            "Provider call latency",
            ["provider"],
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        self.calls = Counter(
            "modelarb_calls", "Provider calls by outcome", ["provider", "outcome"], registry=self.registry
        )
        self.retries = Counter("modelarb_call_retries", "Provider calls retried", ["provider"], registry=self.registry)
        self.refusals = Counter(
            "modelarb_budget_refusals", "Requests or calls refused by a limit", ["limit"], registry=self.registry
        )
        self.registry.register(_Books(store))

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)


class _Books(Collector):
    """Counts read from the database at scrape time."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        tasks = GaugeMetricFamily("modelarb_tasks", "Tasks by state", labels=["state"])
        attempts = GaugeMetricFamily(
            "modelarb_attempts", "Attempts by provider and state", labels=["provider", "state"]
        )
        spend = GaugeMetricFamily(
            "modelarb_provider_spend", "Provider spend booked, in the cost unit", labels=["provider"]
        )
        held = GaugeMetricFamily("modelarb_reservations_outstanding", "Calls holding a reservation")
        held_amount = GaugeMetricFamily("modelarb_reserved", "Amount reserved by calls in flight, in the cost unit")
        with self.store.reading() as session:
            for state, count in session.execute(select(Task.state, func.count()).group_by(Task.state)):
                tasks.add_metric([state], count)
            for provider, state, count in session.execute(
                select(Attempt.provider, Attempt.state, func.count()).group_by(Attempt.provider, Attempt.state)
            ):
                attempts.add_metric([provider, state], count)
            for provider, cost in session.execute(
                select(Call.provider, func.coalesce(func.sum(Call.cost_micro), 0))
                .where(Call.state == "settled")
                .group_by(Call.provider)
            ):
                spend.add_metric([provider], from_micro(int(cost or 0)))
            count, amount = session.execute(
                select(func.count(), func.coalesce(func.sum(Call.reserved_micro), 0)).where(Call.state == "held")
            ).one()
        held.add_metric([], count)
        held_amount.add_metric([], from_micro(int(amount)))
        yield from (tasks, attempts, spend, held, held_amount)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the task being worked on, and any extras."""

    STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        task = getattr(record, "task_id", None) or current_task.get()
        if task is not None:
            entry["task_id"] = task
        entry.update({k: v for k, v in record.__dict__.items() if k not in self.STANDARD and not k.startswith("_")})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_json_logs(level: int = logging.INFO) -> None:
    """Send modelarb's log records to stderr as JSON lines (the CLI's `serve` calls this; the library never does)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("modelarb")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
