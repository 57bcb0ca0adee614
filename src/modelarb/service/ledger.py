"""Double-entry postings in integer micro-units, written in the caller's session.

The caller's transaction makes the state change (a task admitted, a call settled) and its
posting atomic: nothing here commits. Accounts:

- `customer:<id>`: what the customer owes (receivable; a charge debits it, a refund credits it)
- `revenue`: what the broker earned (credited by charges)
- `spend:<provider>`: what the broker spent on a provider (expense)
- `provider:<provider>`: what the broker owes that provider (payable)

Every transaction's legs sum to zero; amounts are Python ints, never floats.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from modelarb.service.store.tables import LedgerEntry, LedgerTransaction, Task

CHARGE, REFUND, PROVIDER_SPEND = "charge", "refund", "provider_spend"
KINDS = (CHARGE, REFUND, PROVIDER_SPEND)
REVENUE = "revenue"
CUSTOMER_PREFIX, PROVIDER_PREFIX, SPEND_PREFIX = "customer:", "provider:", "spend:"


def customer_account(customer_id: int) -> str:
    return f"{CUSTOMER_PREFIX}{customer_id}"


def provider_account(provider: str) -> str:
    return f"{PROVIDER_PREFIX}{provider}"


def spend_account(provider: str) -> str:
    return f"{SPEND_PREFIX}{provider}"


def post(
    session: Session,
    kind: str,
    legs: Sequence[tuple[str, int]],
    *,
    task_id: str | None = None,
    call_id: str | None = None,
) -> int:
    """Book one balanced transaction of `legs` (account, signed micro-units); returns its id.

    Raises ValueError for an unknown kind, fewer than two legs, an empty account, a
    non-integer amount, or legs that do not sum to zero.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown ledger transaction kind {kind!r}; expected one of {', '.join(KINDS)}")
    if len(legs) < 2:
        raise ValueError(f"a {kind} needs at least two legs, got {len(legs)}")
    for account, amount in legs:
        if not isinstance(account, str) or not account:
            raise ValueError(f"a {kind} leg has no account: {account!r}")
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise ValueError(f"a {kind} leg on {account} is {amount!r}; amounts are integer micro-units")
    total = sum(amount for _, amount in legs)
    if total != 0:
        raise ValueError(f"a {kind}'s legs sum to {total}, not 0: {list(legs)}")
    transaction = LedgerTransaction(kind=kind, task_id=task_id, call_id=call_id)
    session.add(transaction)
    session.flush()
    session.add_all(
        LedgerEntry(transaction_id=transaction.id, account=account, amount_micro=amount) for account, amount in legs
    )
    session.flush()
    return transaction.id


def _amount(kind: str, amount: int) -> int:
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
        raise ValueError(f"a {kind} amount must be integer micro-units >= 0, got {amount!r}")
    return amount


def charge(session: Session, task: Task, amount: int) -> int:
    """The customer owes `amount` for `task`: customer +amount, revenue −amount."""
    amount = _amount(CHARGE, amount)
    return post(session, CHARGE, [(customer_account(task.customer_id), amount), (REVENUE, -amount)], task_id=task.id)


def refund(session: Session, task: Task, amount: int) -> int:
    """Give back `amount` charged for `task`: customer −amount, revenue +amount."""
    amount = _amount(REFUND, amount)
    return post(session, REFUND, [(customer_account(task.customer_id), -amount), (REVENUE, amount)], task_id=task.id)


def provider_spend(session: Session, task_id: str, call_id: str, provider: str, amount: int) -> int:
    """Book what provider call `call_id` cost: spend:<provider> +amount, provider:<provider> −amount.

    A call is booked at most once: booking the same call id again is a no-op returning the
    first booking's transaction id (also when a concurrent transaction booked it first).
    """
    amount = _amount(PROVIDER_SPEND, amount)
    existing = _booking(session, call_id)
    if existing is not None:
        return existing
    legs = [(spend_account(provider), amount), (provider_account(provider), -amount)]
    try:
        with session.begin_nested():
            return post(session, PROVIDER_SPEND, legs, task_id=task_id, call_id=call_id)
    except IntegrityError:
        existing = _booking(session, call_id)
        if existing is None:
            raise
        return existing


def _booking(session: Session, call_id: str) -> int | None:
    query = select(LedgerTransaction.id).where(LedgerTransaction.call_id == call_id)
    return session.execute(query).scalar_one_or_none()


def balances(session: Session) -> dict[str, int]:
    """Every account's balance (the sum of its legs), by account name."""
    query = select(LedgerEntry.account, func.sum(LedgerEntry.amount_micro)).group_by(LedgerEntry.account)
    return {account: int(total) for account, total in session.execute(query)}
