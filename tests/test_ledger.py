"""The ledger, its check, summary and exports, on SQLite and PostgreSQL.

The books are built the way the task runner writes them: rows through the tables and money
through `ledger`, each state change and its posting in one transaction.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from modelarb.cli.ledger import ledger_app
from modelarb.data import load_market
from modelarb.errors import ServiceError
from modelarb.service import ledger, reports
from modelarb.service.store import migrate
from modelarb.service.store.engine import Store
from modelarb.service.store.tables import (
    Attempt,
    Call,
    Customer,
    LedgerEntry,
    LedgerTransaction,
    PlanRow,
    Task,
)

CAPS = [500_000, 1_500_000]
ORDER = ["cheap", "strong"]
DAY_1, DAY_2 = datetime(2025, 1, 1, 10), datetime(2025, 1, 2, 10)


@dataclass
class Books:
    """A store holding a small known scenario; task ids are `a` … `e`."""

    store: Store
    customer_id: int


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    store = Store.open(store_url)
    migrate.upgrade(store.engine)
    try:
        yield store
    finally:
        store.close()


def _task(
    task_id: str, customer_id: int, charging: str, price: int, created_at: datetime, instance: str | None
) -> Task:
    return Task(
        id=task_id,
        customer_id=customer_id,
        plan_id="plan-1",
        request_sha256="0" * 64,
        state="queued",
        charging=charging,
        price_micro=price,
        max_price_micro=price,
        instance=instance,
        messages=[{"role": "user", "content": f"solve {task_id}"}],
        verifier={"kind": "exact", "answer": "42"},
        task_metadata={},
        cascade_index=0,
        order=ORDER,
        caps_micro=CAPS,
        hard_limit_micro=sum(CAPS),
        created_at=created_at,
    )


def admit(
    store: Store,
    customer_id: int,
    task_id: str,
    charging: str,
    price: int,
    created_at: datetime,
    instance: str | None = None,
) -> None:
    """Admit a task: per_task charges the price, per_solution reserves it on the customer."""
    with store.transaction() as session:
        task = _task(task_id, customer_id, charging, price, created_at, instance)
        session.add(task)
        session.flush()
        customer = session.get(Customer, customer_id)
        assert customer is not None
        if charging == "per_task":
            ledger.charge(session, task, price)
            task.charged_micro += price
            customer.charged_micro += price
        else:
            customer.reserved_micro += price


def attempt(
    store: Store, task_id: str, stage: int, cost: int, state: str, *, settle: bool = True, call_id: str | None = None
) -> str:
    """One attempt on stage `stage` with its call: held, then (with `settle`) settled at `cost` and booked."""
    call_id = call_id or f"call-{task_id}-{stage}-{cost}-{state}"
    with store.transaction() as session:
        task = session.get(Task, task_id)
        assert task is not None
        task.state = "running"
        number = session.execute(
            select(func.count(Attempt.id)).where(Attempt.task_id == task_id, Attempt.provider == ORDER[stage])
        ).scalar_one()
        row = Attempt(task_id=task_id, stage=stage, provider=ORDER[stage], number=number, state="calling")
        session.add(row)
        session.flush()
        session.add(
            Call(
                id=call_id,
                task_id=task_id,
                attempt_id=row.id,
                provider=ORDER[stage],
                reserved_micro=CAPS[stage],
                state="held",
            )
        )
        task.reserved_micro += CAPS[stage]
    if not settle:
        return call_id
    with store.transaction() as session:
        task, call, row = session.get(Task, task_id), session.get(Call, call_id), session.get(Attempt, row.id)
        assert task is not None and call is not None and row is not None
        call.state, call.cost_micro = "settled", cost
        row.state, row.cost_micro = state, cost
        row.input_tokens, row.output_tokens = 1000 + stage, 200 + stage
        task.reserved_micro -= call.reserved_micro
        task.spent_micro += cost
        ledger.provider_spend(session, task_id, call_id, ORDER[stage], cost)
    return call_id


def finish(store: Store, task_id: str, state: str, solution: str | None = None) -> None:
    """End a task in `state`, charging, refunding and releasing exactly as the charging rules say."""
    with store.transaction() as session:
        task = session.get(Task, task_id)
        assert task is not None
        customer = session.get(Customer, task.customer_id)
        assert customer is not None
        task.state, task.solution = state, solution
        if task.charging == "per_task" and state == "failed":
            ledger.refund(session, task, task.charged_micro)
            customer.charged_micro -= task.charged_micro
            task.charged_micro = 0
        if task.charging == "per_solution":
            customer.reserved_micro -= task.price_micro
            if state == "solved":
                ledger.charge(session, task, task.price_micro)
                task.charged_micro = task.price_micro
                customer.charged_micro += task.price_micro


@pytest.fixture
def books(store: Store) -> Books:
    """a: per_task solved; b: per_task failed and refunded; c: per_solution solved; d: per_solution unsolved
    (c and d on instance `inst-1`); e: per_solution running with a call in flight. a, b on day 1; c, d, e on day 2.
    """
    with store.transaction() as session:
        session.add(PlanRow(id="plan-1", body={"cost_unit": "USD", "cascades": []}))
        customer = Customer(name="acme", spending_limit_micro=20_000_000)
        session.add(customer)
        session.flush()
        customer_id = customer.id
    admit(store, customer_id, "a", "per_task", 2_000_000, DAY_1)
    attempt(store, "a", 0, 300_000, "rejected")
    attempt(store, "a", 1, 900_000, "verified")
    finish(store, "a", "solved", "42")
    admit(store, customer_id, "b", "per_task", 1_000_000, DAY_1)
    attempt(store, "b", 0, 100_000, "error")
    finish(store, "b", "failed")
    admit(store, customer_id, "c", "per_solution", 3_000_000, DAY_2, "inst-1")
    attempt(store, "c", 0, 200_000, "verified")
    finish(store, "c", "solved", "forty-two")
    admit(store, customer_id, "d", "per_solution", 3_000_000, DAY_2, "inst-1")
    attempt(store, "d", 0, 250_000, "rejected")
    attempt(store, "d", 1, 700_000, "rejected")
    finish(store, "d", "unsolved")
    admit(store, customer_id, "e", "per_solution", 1_000_000, DAY_2)
    attempt(store, "e", 0, 0, "calling", settle=False)
    with store.transaction() as session:  # date the postings by their task's day
        for task_id, day in (("a", DAY_1), ("b", DAY_1), ("c", DAY_2), ("d", DAY_2)):
            session.execute(
                update(LedgerTransaction).where(LedgerTransaction.task_id == task_id).values(created_at=day)
            )
    return Books(store, customer_id)


# --- postings ---


def test_post_refuses_bad_legs(store: Store) -> None:
    with store.transaction() as session:
        for kind, legs in [
            ("charge", [("customer:1", 5), ("revenue", -4)]),
            ("charge", [("customer:1", 5.0), ("revenue", -5.0)]),
            ("charge", [("customer:1", True), ("revenue", -1)]),
            ("gift", [("customer:1", 5), ("revenue", -5)]),
            ("charge", [("customer:1", 0)]),
            ("charge", [("", 5), ("revenue", -5)]),
        ]:
            with pytest.raises(ValueError):
                ledger.post(session, kind, legs)
        assert session.execute(select(func.count(LedgerTransaction.id))).scalar_one() == 0


def test_postings_balance_and_spend_books_a_call_once(books: Books) -> None:
    with books.store.transaction() as session:
        before = ledger.balances(session)
        first = session.execute(
            select(LedgerTransaction.id).where(LedgerTransaction.call_id == "call-a-0-300000-rejected")
        )
        again = ledger.provider_spend(session, "a", "call-a-0-300000-rejected", "cheap", 300_000)
        assert again == first.scalar_one()
        assert ledger.balances(session) == before
    assert before == {
        f"customer:{books.customer_id}": 5_000_000,
        "revenue": -5_000_000,
        "spend:cheap": 850_000,
        "provider:cheap": -850_000,
        "spend:strong": 1_600_000,
        "provider:strong": -1_600_000,
    }
    assert sum(before.values()) == 0


def test_concurrent_bookings_of_one_call_book_it_once(books: Books) -> None:
    call_id = attempt(books.store, "e", 1, 0, "calling", settle=False, call_id="call-race")
    results: dict[str, int] = {}
    errors: list[BaseException] = []

    def second_booking() -> None:
        try:
            with books.store.transaction() as session:
                results["second"] = ledger.provider_spend(session, "e", call_id, "strong", 7)
        except BaseException as exc:  # reported below
            errors.append(exc)

    with books.store.transaction() as session:
        results["first"] = ledger.provider_spend(session, "e", call_id, "strong", 7)
        racer = threading.Thread(target=second_booking)
        racer.start()
        time.sleep(0.5)  # the second booking now waits on our lock (row lock, or SQLite's write lock)
        assert racer.is_alive()
    racer.join(timeout=30)
    assert errors == []
    assert results["second"] == results["first"]
    with books.store.transaction() as session:
        count = session.execute(select(func.count()).where(LedgerTransaction.call_id == call_id)).scalar_one()
    assert count == 1


# --- check ---


def test_sound_books_pass_the_check(books: Books) -> None:
    assert reports.check(books.store) == []
    assert reports.counts(books.store) == {"transactions": 10, "tasks": 5}


def test_check_reports_an_unbalanced_transaction(books: Books) -> None:
    with books.store.transaction() as session:
        charge_id = session.execute(
            select(LedgerTransaction.id).where(LedgerTransaction.task_id == "a", LedgerTransaction.kind == "charge")
        ).scalar_one()
        session.add(LedgerEntry(transaction_id=charge_id, account="revenue", amount_micro=-5))
    assert reports.check(books.store) == [f"transaction {charge_id} (charge): legs sum to -5, not 0"]


def test_check_reports_a_task_charge_that_disagrees(books: Books) -> None:
    with books.store.transaction() as session:
        session.execute(update(Task).where(Task.id == "a").values(charged_micro=1_500_000))
    problems = reports.check(books.store)
    assert len(problems) == 3
    assert any(
        "task a " in p and "the ledger charged its customer 2000000, the task says 1500000" in p for p in problems
    )
    assert any("task a " in p and "charged 1500000, but its charging mode says 2000000" in p for p in problems)
    assert any("customer" in p and "its tasks were charged 4500000" in p for p in problems)


def test_check_reports_a_held_call_on_a_final_task(books: Books) -> None:
    with books.store.transaction() as session:
        attempt_id = session.execute(select(Attempt.id).where(Attempt.task_id == "d")).scalars().first()
        session.add(
            Call(id="late", task_id="d", attempt_id=attempt_id, provider="cheap", reserved_micro=1, state="held")
        )
    problems = reports.check(books.store)
    assert any("task d " in p and "final, yet 1 call(s) still held" in p for p in problems)


def test_check_reports_spend_over_a_stage_cap(books: Books) -> None:
    attempt(books.store, "a", 0, 300_000, "rejected", call_id="one-too-many")
    with books.store.transaction() as session:  # put the task back in its final state
        session.execute(update(Task).where(Task.id == "a").values(state="solved"))
    assert reports.check(books.store) == [
        "task a (per_task, solved): spent 600000 on stage 0 (cheap), over its cap 500000"
    ]


def test_check_reports_a_per_task_task_cancelled_before_any_call_but_kept_charged(books: Books) -> None:
    admit(books.store, books.customer_id, "f", "per_task", 500_000, DAY_2)
    with books.store.transaction() as session:
        session.execute(update(Task).where(Task.id == "f").values(state="cancelled"))
    assert reports.check(books.store) == ["task f (per_task, cancelled): charged 500000, but its charging mode says 0"]


# --- summary ---


def test_summary_of_known_books(books: Books) -> None:
    report = reports.summary(books.store, None)
    assert report["cost_unit"] == "USD"
    assert report["revenue_micro"] == 5_000_000 and report["revenue"] == 5.0
    assert report["spend_micro"] == 2_450_000 and report["spend"] == pytest.approx(2.45)
    assert report["profit_micro"] == 2_550_000
    assert report["margin"] == pytest.approx(0.51)
    assert report["spend_by_provider"] == {
        "cheap": {"spend_micro": 850_000, "spend": 0.85},
        "strong": {"spend_micro": 1_600_000, "spend": 1.6},
    }
    assert report["tasks_by_state"] == {"failed": 1, "running": 1, "solved": 2, "unsolved": 1}
    assert [
        (d["date"], d["revenue_micro"], d["spend_micro"], d["profit_micro"], d["tasks_created"]) for d in report["days"]
    ] == [
        ("2025-01-01", 2_000_000, 1_300_000, 700_000, 2),
        ("2025-01-02", 3_000_000, 1_150_000, 1_850_000, 3),
    ]
    later = reports.summary(books.store, DAY_2.replace(hour=0))
    assert (later["revenue_micro"], later["spend_micro"], later["transactions"]) == (3_000_000, 1_150_000, 4)
    assert later["tasks_by_state"] == {"running": 1, "solved": 1, "unsolved": 1}
    assert reports.summary(books.store, datetime(2030, 1, 1))["margin"] is None


def test_summary_refuses_plans_in_several_units(books: Books) -> None:
    with books.store.transaction() as session:
        session.add(PlanRow(id="plan-2", body={"cost_unit": "EUR"}))
    with pytest.raises(ServiceError, match="several cost units"):
        reports.summary(books.store, None)


# --- exports ---


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_exported_attempts_load_as_a_market(books: Books, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"attempts{suffix}"
    assert reports.export_attempts(books.store, path) == 5
    outcomes, _ = load_market(path)
    assert outcomes.providers == ("cheap", "strong")
    assert outcomes.unit == "USD"
    assert list(outcomes.instances) == ["a", "inst-1"]
    assert outcomes.n.tolist() == [[1, 1], [2, 1]]
    assert outcomes.s.tolist() == [[0, 1], [1, 0]]
    np.testing.assert_allclose(outcomes.cost, [[0.3, 0.9], [0.225, 0.7]])


def test_exported_solutions_are_conversations(books: Books, tmp_path: Path) -> None:
    path = tmp_path / "solutions.jsonl"
    assert reports.export_solutions(books.store, path) == 2
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [
        {
            "messages": [{"role": "user", "content": "solve a"}, {"role": "assistant", "content": "42"}],
            "task_id": "a",
            "instance": None,
            "provider": "strong",
        },
        {
            "messages": [{"role": "user", "content": "solve c"}, {"role": "assistant", "content": "forty-two"}],
            "task_id": "c",
            "instance": "inst-1",
            "provider": "cheap",
        },
    ]


def test_exports_refuse_bad_paths(books: Books, tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match=r"\.csv or \.parquet"):
        reports.export_attempts(books.store, tmp_path / "attempts.xlsx")
    with pytest.raises(ServiceError, match="cannot write"):
        reports.export_solutions(books.store, tmp_path / "no" / "such" / "folder" / "solutions.jsonl")


# --- CLI ---


def test_cli_summary_check_and_exports(books: Books, store_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    summary_json = tmp_path / "summary.json"
    result = runner.invoke(ledger_app, ["summary", "--db", store_url, "--json", str(summary_json)])
    assert result.exit_code == 0, result.output
    assert "$5.0000" in result.output and "51.0%" in result.output and "2025-01-02" in result.output
    assert json.loads(summary_json.read_text())["profit_micro"] == 2_550_000
    result = runner.invoke(ledger_app, ["summary", "--db", store_url, "--since", "2025-01-02"])
    assert result.exit_code == 0 and "$3.0000" in result.output
    result = runner.invoke(ledger_app, ["check", "--db", store_url])
    assert result.exit_code == 0
    assert "ledger balances: 10 transactions, 5 tasks" in result.output
    for command, name in [("export-attempts", "a.parquet"), ("export-solutions", "s.jsonl")]:
        result = runner.invoke(ledger_app, [command, "-o", str(tmp_path / name), "--db", store_url])
        assert result.exit_code == 0, result.output
    assert load_market(tmp_path / "a.parquet")[0].n.sum() == 5
    assert len((tmp_path / "s.jsonl").read_text().splitlines()) == 2


def test_cli_check_lists_problems_and_exits_1(books: Books, store_url: str) -> None:
    with books.store.transaction() as session:
        session.execute(update(Customer).values(reserved_micro=Customer.reserved_micro + 1))
    result = CliRunner().invoke(ledger_app, ["check", "--db", store_url])
    assert result.exit_code == 1
    assert "reserves 1000001, but its open per_solution tasks are priced 1000000" in result.output


def test_cli_refuses_bad_input(books: Books, store_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(ledger_app, ["summary", "--db", store_url, "--since", "last tuesday"])
    assert isinstance(result.exception, ServiceError) and "--since 'last tuesday'" in str(result.exception)
    result = runner.invoke(ledger_app, ["export-attempts", "-o", str(tmp_path / "x" / "a.csv"), "--db", store_url])
    assert isinstance(result.exception, ServiceError) and "cannot write" in str(result.exception)
