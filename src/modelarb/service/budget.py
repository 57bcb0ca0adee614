"""Reserve → settle / release: limits are reserved before money is spent, never checked after.

Each function runs inside the caller's transaction and changes counters with one conditional
`UPDATE … WHERE <limit holds>`, which takes the row lock (PostgreSQL) or the database lock
(SQLite `BEGIN IMMEDIATE`) and checks the limit in the same statement: there is no window
between the check and the increment for a concurrent request to slip through.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from modelarb.service import ledger
from modelarb.service.store.tables import Attempt, Call, Customer, Task, utcnow


class LeaseLost(Exception):
    """This worker no longer holds the task (its lease expired and another worker took it)."""


def admit_customer(session: Session, customer_id: int, amount: int, *, charge: bool) -> bool:
    """Take `amount` against the customer's spending limit: charged now (`charge`) or reserved; False if over."""
    column = Customer.charged_micro if charge else Customer.reserved_micro
    result = session.execute(
        update(Customer)
        .where(Customer.id == customer_id)
        .where(
            Customer.spending_limit_micro.is_(None)
            | (Customer.charged_micro + Customer.reserved_micro + amount <= Customer.spending_limit_micro)
        )
        .values({column: column + amount})
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def stage_spend(session: Session, task_id: str, stage: int) -> int:
    """What a task has settled or holds on one stage of its cascade."""
    held = func.coalesce(func.sum(func.coalesce(Call.cost_micro, Call.reserved_micro)), 0)
    query = (
        select(held)
        .join(Attempt, Attempt.id == Call.attempt_id)
        .where(Call.task_id == task_id, Attempt.stage == stage, Call.state != "released")
    )
    return int(session.execute(query).scalar_one())


def reserve_call(
    session: Session, task_id: str, worker: str, attempt: Attempt, call_id: str, amount: int, stage_cap: int
) -> bool:
    """Hold `amount` for one provider call if it fits the task's hard limit and its stage cap; False if not.

    Raises LeaseLost if `worker` no longer holds the task.
    """
    result = session.execute(
        update(Task)
        .where(Task.id == task_id, Task.worker == worker, Task.state == "running")
        .where(Task.spent_micro + Task.reserved_micro + amount <= Task.hard_limit_micro)
        .values(reserved_micro=Task.reserved_micro + amount, updated_at=utcnow())
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        holder = session.execute(select(Task.worker, Task.state).where(Task.id == task_id)).one()
        if holder.worker != worker or holder.state != "running":
            raise LeaseLost(task_id)
        return False
    if stage_spend(session, task_id, attempt.stage) + amount > stage_cap:
        session.execute(update(Task).where(Task.id == task_id).values(reserved_micro=Task.reserved_micro - amount))
        return False
    session.add(
        Call(
            id=call_id,
            task_id=task_id,
            attempt_id=attempt.id,
            provider=attempt.provider,
            reserved_micro=amount,
            state="held",
        )
    )
    session.flush()
    return True


def _claim_held(
    session: Session,
    call_id: str,
    state: str,
    cost: int,
    error: str | None,
    status_code: int | None,
    flagged: bool = False,
) -> Call | None:
    """Move a held call to `state` with one conditional UPDATE; the call, or None if it was not held.

    The `WHERE state = 'held'` makes settling and releasing race-free: of two concurrent attempts to
    end one call (the gateway and a recovery, say), exactly one changes the row.
    """
    result = session.execute(
        update(Call)
        .where(Call.id == call_id, Call.state == "held")
        .values(
            state=state, cost_micro=cost, settled_at=utcnow(), error=error, status_code=status_code, flagged=flagged
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return session.execute(
        select(Call).where(Call.id == call_id).execution_options(populate_existing=True)
    ).scalar_one()


def settle_call(
    session: Session, call_id: str, reported_micro: int, *, error: str | None = None, status_code: int | None = None
) -> int:
    """Book a held call at what it cost (at most its reservation; more is flagged) and release the rest.

    Returns the amount booked; a call already settled or released books nothing more.
    """
    reserved = session.execute(select(Call.reserved_micro).where(Call.id == call_id)).scalar_one_or_none()
    if reserved is None:
        return 0
    booked = min(max(reported_micro, 0), reserved)
    call = _claim_held(session, call_id, "settled", booked, error, status_code, flagged=reported_micro > reserved)
    if call is None:
        return 0
    session.execute(
        update(Task)
        .where(Task.id == call.task_id)
        .values(
            reserved_micro=Task.reserved_micro - call.reserved_micro,
            spent_micro=Task.spent_micro + booked,
            updated_at=utcnow(),
        )
    )
    if booked > 0:
        ledger.provider_spend(session, call.task_id, call.id, call.provider, booked)
    return booked


def release_call(session: Session, call_id: str, *, error: str | None = None, status_code: int | None = None) -> None:
    """Give a held call's reservation back: the call cost nothing."""
    call = _claim_held(session, call_id, "released", 0, error, status_code)
    if call is None:
        return
    session.execute(
        update(Task).where(Task.id == call.task_id).values(reserved_micro=Task.reserved_micro - call.reserved_micro)
    )
