"""The broker end to end: real uvicorn servers on loopback (broker + replay market), SQLite and PostgreSQL."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

from sqlalchemy import select

from broker_setup import replay_task, running_broker, wait_final
from modelarb.service import reports
from modelarb.service.states import FINAL, SOLVED
from modelarb.service.store.tables import Call, Customer, Task


def test_replay_tasks_run_end_to_end_and_the_ledger_balances(store_url: str, tmp_path: Path) -> None:
    with running_broker(store_url, tmp_path) as live, live.customer("alice") as alice:
        quote = alice.post("/v1/quotes", json={"charging": "per_task"}).json()
        assert quote["price_micro"] < quote["market_price_micro"]
        ids = []
        for k, instance in enumerate(live.outcomes.instances[:24]):
            body = replay_task(str(instance), quote_id=quote["id"] if k % 2 else None)
            answer = alice.post("/v1/tasks", json=body)
            assert answer.status_code == 202, answer.text
            ids.append(answer.json()["id"])
        done = wait_final(alice, ids)
        assert {task["state"] for task in done.values()} <= {"solved", "unsolved"}
        assert any(task["state"] == SOLVED for task in done.values())
        for task in done.values():
            assert task["charged_micro"] == task["price_micro"]  # per_task: charged whether solved or not
            real = [a for a in task["attempts"] if a["state"] in ("verified", "rejected")]
            assert sum(a["verified"] for a in real) == (task["state"] == SOLVED)
            for stage in {a["stage"] for a in real}:  # fresh draws: attempts of a stage are numbered 0, 1, 2, ...
                numbers = [a["number"] for a in real if a["stage"] == stage]
                assert numbers == list(range(len(numbers)))
            if task["state"] == SOLVED:
                assert "replay-outcome:" in task["solution"]
            by_stage: dict[int, int] = {}
            for attempt in task["attempts"]:
                by_stage[attempt["stage"]] = by_stage.get(attempt["stage"], 0) + attempt["cost_micro"]
            caps = task["cascade"]["caps"]
            assert all(spent <= round(caps[stage] * 1e6) for stage, spent in by_stage.items())
        assert reports.check(live.store) == []


def test_per_solution_charges_only_verified_solutions(tmp_path: Path) -> None:
    with running_broker(f"sqlite:///{tmp_path / 'b.sqlite3'}", tmp_path) as live, live.customer("bob") as bob:
        quote = bob.post("/v1/quotes", json={"charging": "per_solution"}).json()
        per_task = bob.post("/v1/quotes", json={}).json()
        assert quote["price_micro"] > per_task["price_micro"]
        ids = [
            bob.post("/v1/tasks", json=replay_task(str(i), quote_id=quote["id"])).json()["id"]
            for i in live.outcomes.instances[:16]
        ]
        for task in wait_final(bob, ids).values():
            assert task["charged_micro"] == (quote["price_micro"] if task["state"] == SOLVED else 0)
        assert reports.check(live.store) == []
        with live.store.reading() as session:
            customer = session.execute(select(Customer).where(Customer.name == "bob")).scalar_one()
            assert customer.reserved_micro == 0


def test_a_retried_request_returns_the_same_task_and_charges_once(store_url: str, tmp_path: Path) -> None:
    with running_broker(store_url, tmp_path) as live, live.customer("carol") as carol:
        body = replay_task(str(live.outcomes.instances[0]))
        first = carol.post("/v1/tasks", json=body, headers={"Idempotency-Key": "order-1"})
        again = carol.post("/v1/tasks", json=body, headers={"Idempotency-Key": "order-1"})
        assert first.status_code == 202 and again.status_code == 200
        assert first.json()["id"] == again.json()["id"]
        other = carol.post("/v1/tasks", json={**body, "max_price": 9.0}, headers={"Idempotency-Key": "order-1"})
        assert other.status_code == 409 and "different request" in other.json()["error"]["message"]
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = list(
                pool.map(
                    lambda _: carol.post("/v1/tasks", json=body, headers={"Idempotency-Key": "order-2"}), range(16)
                )
            )
        assert {a.status_code for a in answers} <= {200, 202}
        assert len({a.json()["id"] for a in answers}) == 1
        wait_final(carol, [first.json()["id"], answers[0].json()["id"]])
        with live.store.reading() as session:
            customer = session.execute(select(Customer).where(Customer.name == "carol")).scalar_one()
            assert customer.charged_micro == 2 * first.json()["price_micro"]
        assert reports.check(live.store) == []


def test_concurrent_tasks_keep_caps_and_the_customer_limit(store_url: str, tmp_path: Path) -> None:
    with running_broker(store_url, tmp_path, workers=8) as live:
        price = live.broker.terms.price_micro("per_task")
        affordable = 20
        with live.customer("dave", spending_limit_micro=affordable * price + price // 2) as dave:
            instances = [str(live.outcomes.instances[k % live.outcomes.n_instances]) for k in range(256)]
            with concurrent.futures.ThreadPoolExecutor(64) as pool:
                answers = list(pool.map(lambda i: dave.post("/v1/tasks", json=replay_task(i)), instances))
            admitted = [a.json()["id"] for a in answers if a.status_code == 202]
            refused = [a for a in answers if a.status_code != 202]
            assert len(admitted) == affordable
            assert {a.status_code for a in refused} == {402}
            wait_final(dave, admitted)
        with live.store.reading() as session:
            customer = session.execute(select(Customer).where(Customer.name == "dave")).scalar_one()
            assert customer.charged_micro == affordable * price <= customer.spending_limit_micro
            for task in session.execute(select(Task)).scalars():
                assert task.spent_micro <= task.hard_limit_micro <= sum(task.caps_micro)
                assert task.state in FINAL and task.reserved_micro == 0
            assert session.execute(select(Call).where(Call.state == "held")).first() is None
        assert reports.check(live.store) == []
