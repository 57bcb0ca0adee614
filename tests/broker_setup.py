"""A small synthetic market, a plan fitted on it, and a real broker and replay market on loopback, for tests."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from modelarb.core.plan import Plan, fit
from modelarb.core.search import best_solve_rate
from modelarb.data.outcomes import Outcomes, from_cells
from modelarb.service.api.app import create_app
from modelarb.service.broker import Broker, BrokerSettings
from modelarb.service.keys import create_key
from modelarb.service.replay.faults import Faults
from modelarb.service.replay.market import create_replay_app, replay_providers_toml
from modelarb.service.settings import load_providers
from modelarb.service.states import FINAL
from modelarb.service.store.engine import Store
from servers import serve_in_thread

REPLAY_KEY = b"replay-key-for-tests"
PROVIDERS = ("cheap", "strong")


def synthetic_market(instances: int = 60, attempts: int = 16, seed: int = 7) -> Outcomes:
    """Two providers on shared instances of correlated difficulty: a cheap weak one and a dear strong one."""
    rng = np.random.default_rng(seed)
    difficulty = rng.uniform(0, 1, instances)
    skill = {"cheap": np.clip(0.95 - 1.1 * difficulty, 0.0, 1), "strong": np.clip(1.1 - 0.9 * difficulty, 0.0, 1)}
    price = {"cheap": (0.001, 0.004), "strong": (0.01, 0.03)}
    cells: dict[str, dict[str, tuple[Any, float]]] = {}
    for provider in PROVIDERS:
        cells[provider] = {
            f"inst-{i:03d}": (rng.random(attempts) < skill[provider][i], float(rng.uniform(*price[provider])))
            for i in range(instances)
        }
    return from_cells(cells, list(PROVIDERS), "USD", "synthetic")


def synthetic_plan(outcomes: Outcomes, share: float = 0.9) -> Plan:
    """The exact plan for a solve rate a little below the best single provider's."""
    return fit(outcomes, target_solve_rate=share * best_solve_rate(outcomes, "exact"))


@dataclass
class Running:
    """A broker and its replay market, both served on loopback."""

    url: str
    replay_url: str
    broker: Broker
    store: Store
    plan: Plan
    outcomes: Outcomes

    def customer(self, name: str, spending_limit_micro: int | None = None) -> httpx.Client:
        key = create_key(self.store, name, spending_limit_micro=spending_limit_micro)
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {create_key(self.store)}"}, timeout=30
        )


def providers_file(
    folder: Path, replay_url: str, providers: tuple[str, ...] = PROVIDERS, extra: str = "", **options: Any
) -> Path:
    """A providers file for the replay market; `extra` TOML lines (`key = value`) set keys in every provider's table."""
    path = folder / "providers.toml"
    text = replay_providers_toml(None, replay_url, providers, 10_000_000, **options)
    for line in filter(None, extra.splitlines()):
        key = line.split("=")[0].strip()
        text = re.sub(rf"^{key} = .*$", "", text, flags=re.M).replace(
            "send_metadata = true", f"send_metadata = true\n{line}"
        )
    path.write_text(text)
    return path


@contextmanager
def running_broker(
    db_url: str,
    folder: Path,
    outcomes: Outcomes | None = None,
    plan: Plan | None = None,
    faults: dict[str, Faults] | None = None,
    provider_options: str = "",
    **settings: Any,
) -> Iterator[Running]:
    """Replay market (with `faults`, if any) + broker (workers in the app) on loopback; both stopped at the end."""
    outcomes = outcomes or synthetic_market()
    plan = plan or synthetic_plan(outcomes)
    replay_url, stop_replay = serve_in_thread(create_replay_app(outcomes, REPLAY_KEY, faults=faults))
    try:
        store = Store.open(db_url)
        options = {"workers": 4, "replay_key": REPLAY_KEY, "poll_s": 0.05, **settings}
        providers = load_providers(providers_file(folder, replay_url, extra=provider_options))
        broker = Broker(store, plan, providers, BrokerSettings(**options))
        url, stop_broker = serve_in_thread(create_app(broker))
        try:
            yield Running(url, replay_url, broker, store, plan, outcomes)
        finally:
            stop_broker()
            store.close()
    finally:
        stop_replay()


def replay_task(instance: str, max_price: float = 10.0, **extra: Any) -> dict[str, Any]:
    """A task body for the replay market: solve `instance`, verified by its signed outcome."""
    return {
        "messages": [{"role": "user", "content": f"Solve {instance}."}],
        "verifier": {"kind": "replay"},
        "instance": instance,
        "max_price": max_price,
        **extra,
    }


def wait_final(client: httpx.Client, task_ids: list[str], timeout_s: float = 60) -> dict[str, dict[str, Any]]:
    """Poll until every task is in a final state; returns them by id."""
    deadline = time.monotonic() + timeout_s
    done: dict[str, dict[str, Any]] = {}
    while len(done) < len(task_ids):
        for task_id in task_ids:
            if task_id not in done:
                body = client.get(f"/v1/tasks/{task_id}").json()
                if body["state"] in FINAL:
                    done[task_id] = body
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(task_ids) - len(done)} tasks did not finish within {timeout_s} s")
        time.sleep(0.05)
    return done
