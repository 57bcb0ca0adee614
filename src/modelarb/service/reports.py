"""What the ledger says: a profit summary, a soundness check, and exports of attempts and solutions.

Pure reads over a `Store`: each report reads one consistent snapshot (REPEATABLE READ on
PostgreSQL; SQLite transactions are serialised), so it can run beside a live broker.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from modelarb.data.outcomes import USD
from modelarb.errors import ServiceError
from modelarb.service import ledger
from modelarb.service.money import from_micro
from modelarb.service.states import CHARGING, FINAL, PER_SOLUTION, PER_TASK, SOLVED, STATES, final_charge
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

ATTEMPT_COLUMNS = ("instance", "provider", "attempt", "solved", "cost", "input_tokens", "output_tokens", "cost_unit")
REAL_ATTEMPT_STATES = ("verified", "rejected")
TABLE_SUFFIXES = (".csv", ".parquet")


@contextmanager
def _snapshot(store: Store) -> Iterator[Session]:
    with store.transaction() as session:
        if store.postgresql:
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        yield session


def _naive_utc(moment: datetime | None) -> datetime | None:
    """A datetime as the naive UTC the tables store; a naive input is taken to be UTC already."""
    if moment is None or moment.tzinfo is None:
        return moment
    try:
        return moment.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        raise ServiceError(f"{moment.isoformat()} is outside the range of dates the ledger can compare") from None


def cost_unit(session: Session) -> str:
    """The unit every plan's costs are in (USD when there is no plan); a ServiceError if plans disagree."""
    units = {str((body or {}).get("cost_unit") or USD) for body in session.execute(select(PlanRow.body)).scalars()}
    if len(units) > 1:
        raise ServiceError(
            f"the plans in this database price in several cost units ({', '.join(sorted(units))}); "
            "a summary needs one unit: keep one database per cost unit"
        )
    return units.pop() if units else USD


def _money(prefix: str, micro: int) -> dict[str, Any]:
    return {f"{prefix}_micro": micro, prefix: from_micro(micro)}


def summary(store: Store, since: datetime | None = None) -> dict[str, Any]:
    """Revenue, provider spend, profit and realised margin, tasks by state, and the same per UTC day.

    Money appears twice: `<name>_micro` (integer micro-units) and `<name>` (float, in `cost_unit`).
    With `since`, only ledger transactions and tasks created at or after it count.
    """
    start = _naive_utc(since)
    with _snapshot(store) as session:
        unit = cost_unit(session)
        legs = (
            select(LedgerTransaction.created_at, LedgerEntry.account, LedgerEntry.amount_micro)
            .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
            .where(or_(LedgerEntry.account == ledger.REVENUE, LedgerEntry.account.like(f"{ledger.SPEND_PREFIX}%")))
        )
        transactions = select(func.count(LedgerTransaction.id))
        tasks = select(Task.state, Task.created_at)
        if start is not None:
            legs = legs.where(LedgerTransaction.created_at >= start)
            transactions = transactions.where(LedgerTransaction.created_at >= start)
            tasks = tasks.where(Task.created_at >= start)
        revenue_by_day: dict[date, int] = defaultdict(int)
        spend_by_day: dict[date, int] = defaultdict(int)
        spend_by_provider: dict[str, int] = defaultdict(int)
        for created_at, account, amount in session.execute(legs):
            day = created_at.date()
            if account == ledger.REVENUE:
                revenue_by_day[day] -= amount
            else:
                spend_by_day[day] += amount
                spend_by_provider[account.removeprefix(ledger.SPEND_PREFIX)] += amount
        tasks_by_state: dict[str, int] = defaultdict(int)
        tasks_by_day: dict[date, int] = defaultdict(int)
        for state, created_at in session.execute(tasks):
            tasks_by_state[state] += 1
            tasks_by_day[created_at.date()] += 1
        n_transactions = int(session.execute(transactions).scalar_one())
    revenue, spend = sum(revenue_by_day.values()), sum(spend_by_day.values())
    days = []
    for day in sorted(set(revenue_by_day) | set(spend_by_day) | set(tasks_by_day)):
        day_revenue, day_spend = revenue_by_day.get(day, 0), spend_by_day.get(day, 0)
        days.append(
            {
                "date": day.isoformat(),
                **_money("revenue", day_revenue),
                **_money("spend", day_spend),
                **_money("profit", day_revenue - day_spend),
                "tasks_created": tasks_by_day.get(day, 0),
            }
        )
    return {
        "since": start.isoformat() if start is not None else None,
        "cost_unit": unit,
        "transactions": n_transactions,
        **_money("revenue", revenue),
        **_money("spend", spend),
        **_money("profit", revenue - spend),
        "margin": (revenue - spend) / revenue if revenue else None,
        "spend_by_provider": {p: _money("spend", spend_by_provider[p]) for p in sorted(spend_by_provider)},
        "tasks_by_state": {s: tasks_by_state[s] for s in sorted(tasks_by_state)},
        "days": days,
    }


def counts(store: Store) -> dict[str, int]:
    """How many ledger transactions and tasks the database holds."""
    with _snapshot(store) as session:
        transactions = session.execute(select(func.count(LedgerTransaction.id))).scalar_one()
        tasks = session.execute(select(func.count(Task.id))).scalar_one()
    return {"transactions": int(transactions), "tasks": int(tasks)}


def _sums(session: Session, query: Any) -> dict[Any, int]:
    """`key..., total` rows as {key: total} (a tuple key when there are several key columns)."""
    out: dict[Any, int] = {}
    for row in session.execute(query):
        *key, total = row
        out[key[0] if len(key) == 1 else tuple(key)] = int(total or 0)
    return out


def check(store: Store) -> list[str]:
    """Every way the ledger and the task, call and customer rows disagree; empty when the books are sound."""
    with _snapshot(store) as session:
        problems = _check_transactions(session)
        problems += _check_tasks(session)
        problems += _check_customers(session)
    return problems


def _check_transactions(session: Session) -> list[str]:
    problems = []
    legs = (
        select(
            LedgerTransaction.id,
            LedgerTransaction.kind,
            func.count(LedgerEntry.id),
            func.coalesce(func.sum(LedgerEntry.amount_micro), 0),
        )
        .outerjoin(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
        .group_by(LedgerTransaction.id, LedgerTransaction.kind)
        .order_by(LedgerTransaction.id)
    )
    for transaction_id, kind, n_legs, total in session.execute(legs):
        if kind not in ledger.KINDS:
            problems.append(f"transaction {transaction_id}: unknown kind {kind!r}")
        if n_legs < 2:
            problems.append(f"transaction {transaction_id} ({kind}): {n_legs} leg(s); a transaction needs two or more")
        if int(total) != 0:
            problems.append(f"transaction {transaction_id} ({kind}): legs sum to {int(total)}, not 0")
    return problems


def _task_legs(session: Session, prefix: str) -> dict[Any, int]:
    """{(task id, account): net amount} over accounts starting with `prefix`."""
    return _sums(
        session,
        select(LedgerTransaction.task_id, LedgerEntry.account, func.sum(LedgerEntry.amount_micro))
        .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
        .where(LedgerTransaction.task_id.is_not(None), LedgerEntry.account.like(f"{prefix}%"))
        .group_by(LedgerTransaction.task_id, LedgerEntry.account),
    )


def _check_tasks(session: Session) -> list[str]:
    customer_legs = _task_legs(session, ledger.CUSTOMER_PREFIX)
    spend_legs: dict[str, int] = defaultdict(int)
    for (task_id, _account), amount in _task_legs(session, ledger.SPEND_PREFIX).items():
        spend_legs[task_id] += amount
    settled = _sums(
        session,
        select(Call.task_id, func.sum(Call.cost_micro)).where(Call.state == "settled").group_by(Call.task_id),
    )
    held = _sums(
        session,
        select(Call.task_id, func.count(Call.id)).where(Call.state == "held").group_by(Call.task_id),
    )
    held_reserved = _sums(
        session,
        select(Call.task_id, func.sum(Call.reserved_micro)).where(Call.state == "held").group_by(Call.task_id),
    )
    calls_made = _sums(session, select(Call.task_id, func.count(Call.id)).group_by(Call.task_id))
    stage_spend = _sums(
        session,
        select(Call.task_id, Attempt.stage, func.sum(Call.cost_micro))
        .join(Attempt, Attempt.id == Call.attempt_id)
        .where(Call.state == "settled")
        .group_by(Call.task_id, Attempt.stage),
    )
    stages: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for (task_id, stage), amount in stage_spend.items():
        stages[task_id].append((stage, amount))
    by_task: dict[str, dict[str, int]] = defaultdict(dict)
    for (task_id, account), amount in customer_legs.items():
        by_task[task_id][account] = amount
    verified = set(session.execute(select(Attempt.task_id).where(Attempt.state == "verified")).scalars())
    problems = []
    for task in session.execute(select(Task).order_by(Task.created_at, Task.id)).scalars():
        if task.state in FINAL and task.state != SOLVED and task.id in verified:
            problems.append(f"task {task.id}: {task.state}, yet one of its attempts was verified")
        legs = by_task.get(task.id, {})
        own = ledger.customer_account(task.customer_id)
        problems += [
            f"task {task.id}: {amount} booked on {account}, not on its customer's account {own}"
            for account, amount in sorted(legs.items())
            if account != own and amount != 0
        ]
        problems += _check_task(
            task,
            charged=legs.get(own, 0),
            spent_legs=spend_legs.get(task.id, 0),
            settled=settled.get(task.id, 0),
            held=held.get(task.id, 0),
            held_reserved=held_reserved.get(task.id, 0),
            calls_made=calls_made.get(task.id, 0) > 0,
            stages=stages.get(task.id, []),
        )
    return problems


def _expected_charge(task: Task, calls_made: bool) -> int:
    if task.state in FINAL:
        return final_charge(task.charging, task.state, task.price_micro, calls_made)
    return task.price_micro if task.charging == PER_TASK else 0


def _check_task(
    task: Task,
    *,
    charged: int,
    spent_legs: int,
    settled: int,
    held: int,
    held_reserved: int,
    calls_made: bool,
    stages: list[tuple[int, int]],
) -> list[str]:
    name = f"task {task.id} ({task.charging}, {task.state})"
    problems = []
    if task.state not in STATES:
        problems.append(f"{name}: unknown state; expected one of {', '.join(STATES)}")
    if task.charging not in CHARGING:
        problems.append(f"{name}: unknown charging mode; expected one of {', '.join(CHARGING)}")
    if charged != task.charged_micro:
        problems.append(f"{name}: the ledger charged its customer {charged}, the task says {task.charged_micro}")
    if task.charging in CHARGING and task.state in STATES:
        expected = _expected_charge(task, calls_made)
        if task.charged_micro != expected:
            problems.append(f"{name}: charged {task.charged_micro}, but its charging mode says {expected}")
    if not spent_legs == task.spent_micro == settled:
        problems.append(
            f"{name}: spent {task.spent_micro}, but its spend postings sum to {spent_legs} "
            f"and its settled calls cost {settled}"
        )
    if task.reserved_micro != held_reserved:
        problems.append(f"{name}: reserves {task.reserved_micro}, but its held calls reserve {held_reserved}")
    if task.state in FINAL and held:
        problems.append(f"{name}: final, yet {held} call(s) still held")
    if task.state in FINAL and task.reserved_micro != 0:
        problems.append(f"{name}: final, yet it still reserves {task.reserved_micro}")
    if task.spent_micro > task.hard_limit_micro:
        problems.append(f"{name}: spent {task.spent_micro}, over its hard limit {task.hard_limit_micro}")
    elif task.spent_micro + task.reserved_micro > task.hard_limit_micro:
        problems.append(
            f"{name}: spent {task.spent_micro} + reserved {task.reserved_micro}, "
            f"over its hard limit {task.hard_limit_micro}"
        )
    caps = list(task.caps_micro or [])
    for stage, amount in sorted(stages):
        if not 0 <= stage < len(caps):
            problems.append(f"{name}: spent {amount} on stage {stage}, which its cascade of {len(caps)} lacks")
        elif amount > int(caps[stage]):
            provider = task.order[stage] if stage < len(task.order) else "?"
            problems.append(f"{name}: spent {amount} on stage {stage} ({provider}), over its cap {int(caps[stage])}")
    return problems


def _check_customers(session: Session) -> list[str]:
    charged = _sums(session, select(Task.customer_id, func.sum(Task.charged_micro)).group_by(Task.customer_id))
    reserved = _sums(
        session,
        select(Task.customer_id, func.sum(Task.price_micro))
        .where(Task.charging == PER_SOLUTION, Task.state.not_in(FINAL))
        .group_by(Task.customer_id),
    )
    accounts = ledger.balances(session)
    problems = []
    for customer in session.execute(select(Customer).order_by(Customer.id)).scalars():
        name = f"customer {customer.id} ({customer.name})"
        tasks_charged = charged.get(customer.id, 0)
        if customer.charged_micro != tasks_charged:
            problems.append(f"{name}: charged {customer.charged_micro}, but its tasks were charged {tasks_charged}")
        balance = accounts.get(ledger.customer_account(customer.id), 0)
        if customer.charged_micro != balance:
            problems.append(f"{name}: charged {customer.charged_micro}, but its ledger account holds {balance}")
        tasks_reserved = reserved.get(customer.id, 0)
        if customer.reserved_micro != tasks_reserved:
            problems.append(
                f"{name}: reserves {customer.reserved_micro}, but its open per_solution tasks are priced "
                f"{tasks_reserved}"
            )
        limit = customer.spending_limit_micro
        if limit is not None and customer.charged_micro + customer.reserved_micro > limit:
            problems.append(
                f"{name}: charged {customer.charged_micro} + reserved {customer.reserved_micro}, "
                f"over its spending limit {limit}"
            )
    return problems


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file beside `path`, then rename; a ServiceError if it cannot be written."""
    path = Path(path).expanduser()
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(handle)
    except OSError as exc:
        raise ServiceError(f"cannot write {path}: {exc.strerror or exc}; choose a writable path") from None
    try:
        write(Path(temporary))
        os.replace(temporary, path)
    except OSError as exc:
        raise ServiceError(f"cannot write {path}: {exc.strerror or exc}; choose a writable path") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _attempt_rows(session: Session, unit: str) -> list[dict[str, Any]]:
    query = (
        select(Attempt, Task.instance)
        .join(Task, Task.id == Attempt.task_id)
        .where(Attempt.state.in_(REAL_ATTEMPT_STATES))
        .order_by(Task.created_at, Task.id, Attempt.provider, Attempt.number, Attempt.id)
    )
    numbers: dict[tuple[str, str], int] = defaultdict(int)
    rows = []
    for attempt, instance in session.execute(query):
        name = instance or attempt.task_id
        number = numbers[(name, attempt.provider)]
        numbers[(name, attempt.provider)] += 1
        rows.append(
            {
                "instance": name,
                "provider": attempt.provider,
                "attempt": number,
                "solved": attempt.state == "verified",
                "cost": from_micro(attempt.cost_micro),
                "input_tokens": attempt.input_tokens,
                "output_tokens": attempt.output_tokens,
                "cost_unit": unit,
            }
        )
    return rows


def export_attempts(store: Store, path: Path) -> int:
    """Write every verified or rejected attempt as a long table (`.csv` or `.parquet`); returns the row count.

    Columns: instance (the task's instance, else its id), provider, attempt, solved, cost (in
    the cost unit), input_tokens, output_tokens, cost_unit: what `modelarb.data.load_market`
    reads. Attempts are numbered per (instance, provider) from 0 in the order the tasks came,
    so several tasks on one instance add up to more attempts of it.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ServiceError(f"{path}: an attempts export is a .csv or .parquet file; name it e.g. attempts.parquet")
    with _snapshot(store) as session:
        rows = _attempt_rows(session, cost_unit(session))
    _write_atomically(path, lambda out: _write_parquet(out, rows) if suffix == ".parquet" else _write_csv(out, rows))
    return len(rows)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=ATTEMPT_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "solved": int(row["solved"]), "cost": repr(row["cost"])})


def _write_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("instance", pa.string()),
            ("provider", pa.string()),
            ("attempt", pa.int64()),
            ("solved", pa.bool_()),
            ("cost", pa.float64()),
            ("input_tokens", pa.int64()),
            ("output_tokens", pa.int64()),
            ("cost_unit", pa.string()),
        ]
    )
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def export_solutions(store: Store, path: Path) -> int:
    """Write one JSON line per solved task: the conversation with its verified solution; returns the count.

    Each line: {"messages": the task's messages + the assistant's solution, "task_id",
    "instance", "provider" (whose attempt was verified)}.
    """
    with _snapshot(store) as session:
        tasks = session.execute(select(Task).where(Task.state == SOLVED).order_by(Task.created_at, Task.id)).scalars()
        verified = _verified_providers(session)
        lines = [
            {
                "messages": [*task.messages, {"role": "assistant", "content": task.solution}],
                "task_id": task.id,
                "instance": task.instance,
                "provider": verified.get(task.id),
            }
            for task in tasks
        ]

    def write(out: Path) -> None:
        with open(out, "w", encoding="utf-8") as handle:
            _write_lines(handle, lines)

    _write_atomically(Path(path), write)
    return len(lines)


def _verified_providers(session: Session) -> dict[str, str]:
    """The provider of each task's last verified attempt."""
    query = select(Attempt.task_id, Attempt.provider).where(Attempt.state == "verified").order_by(Attempt.id)
    return {task_id: provider for task_id, provider in session.execute(query)}


def _write_lines(handle: IO[str], lines: list[dict[str, Any]]) -> None:
    for line in lines:
        handle.write(json.dumps(line, ensure_ascii=False) + "\n")
