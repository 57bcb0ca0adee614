"""Two broker processes on one PostgreSQL database: one queue, no task run twice, no limit passed."""

from __future__ import annotations

import concurrent.futures
import itertools
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from broker_process import BrokerProcess, serve_args
from broker_setup import REPLAY_KEY, replay_task, synthetic_market, synthetic_plan, wait_final
from modelarb.service import reports
from modelarb.service.admission import Terms, plan_id_of
from modelarb.service.broker import BrokerSettings
from modelarb.service.keys import create_key
from modelarb.service.replay.market import create_replay_app
from modelarb.service.states import FINAL
from modelarb.service.store.engine import Store
from modelarb.service.store.migrate import upgrade
from modelarb.service.store.tables import Attempt, Customer, Task
from servers import serve_in_thread

SUBMISSIONS = 256


@pytest.fixture
def replay_url() -> Iterator[str]:
    url, stop = serve_in_thread(create_replay_app(synthetic_market(), REPLAY_KEY))
    try:
        yield url
    finally:
        stop()


def test_two_brokers_share_one_queue_and_hold_every_limit(postgres_url: str, tmp_path: Path, replay_url: str) -> None:
    outcomes = synthetic_market()
    plan = synthetic_plan(outcomes)
    args = serve_args(tmp_path, plan, postgres_url, replay_url)
    store = Store.open(postgres_url)
    upgrade(store.engine)
    price = Terms(plan, plan_id_of(plan), BrokerSettings().discount, 600).price_micro("per_task")
    limits = {"regular": 30, "brand-new": 7}  # how many tasks each customer's spending limit affords
    keys = {name: create_key(store, name, spending_limit_micro=n * price + price // 3) for name, n in limits.items()}
    brokers = [BrokerProcess(args, tmp_path / f"broker-{k}.log") for k in range(2)]
    try:
        clients = {
            (name, b.url): httpx.Client(base_url=b.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
            for name, key in keys.items()
            for b in brokers
        }
        jobs = [
            (name, brokers[k % 2].url, str(outcomes.instances[k % outcomes.n_instances]))
            for name, k in itertools.product(keys, range(SUBMISSIONS))
        ]
        with concurrent.futures.ThreadPoolExecutor(64) as pool:
            answers = list(pool.map(lambda job: clients[job[:2]].post("/v1/tasks", json=replay_task(job[2])), jobs))
        admitted = {
            name: [
                a.json()["id"] for (n, _, _), a in zip(jobs, answers, strict=True) if n == name and a.status_code == 202
            ]
            for name in keys
        }
        assert {a.status_code for a in answers} == {202, 402}
        assert {name: len(ids) for name, ids in admitted.items()} == limits
        for name, ids in admitted.items():
            wait_final(clients[(name, brokers[0].url)], ids, timeout_s=120)
        for client in clients.values():
            client.close()
    finally:
        for broker in brokers:
            broker.stop()
    with store.reading() as session:
        for name, n in limits.items():
            customer = session.execute(select(Customer).where(Customer.name == name)).scalar_one()
            assert customer.charged_micro == n * price <= customer.spending_limit_micro
        tasks = session.execute(select(Task)).scalars().all()
        assert len(tasks) == sum(limits.values()) and all(t.state in FINAL for t in tasks)
        workers: dict[str, set[str | None]] = {}
        for task_id, worker in session.execute(select(Attempt.task_id, Attempt.worker)):
            workers.setdefault(task_id, set()).add(worker)
    assert all(len(ran_by) == 1 for ran_by in workers.values()), "a task was run by two workers"
    processes = {str(w).split("/")[0] for ran_by in workers.values() for w in ran_by}  # worker ids: <process>/<k>
    assert len(processes) == 2, "both brokers should have run tasks"
    assert reports.check(store) == []
    store.close()
