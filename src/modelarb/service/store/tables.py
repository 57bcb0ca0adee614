"""The broker's tables. Money columns are integer micro-units of the plan's cost unit; times are UTC.

Every state change a payment depends on is a row here, written in the same database
transaction as the ledger postings that pay for it (see `ledger`), so a process killed at
any line leaves a state that `tasks.recover` can resume or refund.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    """Now, as a naive UTC datetime (what both SQLite and PostgreSQL store the same way)."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON, int: BigInteger}


class Customer(Base):
    """Who buys verified solutions; `spending_limit_micro` (optional) bounds reserved + charged."""

    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    spending_limit_micro: Mapped[int | None]
    reserved_micro: Mapped[int] = mapped_column(default=0)
    charged_micro: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ApiKey(Base):
    """A bearer key `mk_<id>_<secret>`: only the SHA-256 of the secret is stored."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    role: Mapped[str] = mapped_column(String(16))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)


class PlanRow(Base):
    """A plan the broker served, by the SHA-256 of its JSON."""

    __tablename__ = "plans"
    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    body: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Quote(Base):
    """A price offered to one customer under one plan, valid until `expires_at`."""

    __tablename__ = "quotes"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"))
    charging: Mapped[str] = mapped_column(String(16))
    price_micro: Mapped[int]
    market_price_micro: Mapped[int]
    solve_rate: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


class Task(Base):
    """One customer task: what to solve, how it is verified, what it may spend, where it stands.

    `order` and `caps_micro` are the cascade this task was assigned (one of the plan's, drawn
    with the plan's weights); `hard_limit_micro` bounds spent + reserved at all times.
    A running task is held by `worker` until `lease_until` (unix seconds); an expired lease
    lets another worker resume it.
    """

    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("customer_id", "idempotency_key", name="uq_tasks_customer_idempotency_key"),
        Index("ix_tasks_state_lease", "state", "lease_until"),
        Index("ix_tasks_customer_created", "customer_id", "created_at"),
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"))
    quote_id: Mapped[str | None] = mapped_column(ForeignKey("quotes.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_sha256: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    charging: Mapped[str] = mapped_column(String(16))
    price_micro: Mapped[int]
    max_price_micro: Mapped[int]
    instance: Mapped[str | None] = mapped_column(String(300))
    messages: Mapped[list[Any]]
    verifier: Mapped[dict[str, Any]]
    task_metadata: Mapped[dict[str, Any]]
    cascade_index: Mapped[int] = mapped_column(Integer)
    order: Mapped[list[Any]]
    caps_micro: Mapped[list[Any]]
    hard_limit_micro: Mapped[int]
    spent_micro: Mapped[int] = mapped_column(default=0)
    reserved_micro: Mapped[int] = mapped_column(default=0)
    charged_micro: Mapped[int] = mapped_column(default=0)
    worker: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[float | None] = mapped_column(Float)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    solution: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)


class Attempt(Base):
    """One attempt of one provider on a task: the call that made it and how it was verified.

    `number` counts this provider's attempts on the task from 0. States: `calling` (a call is
    in flight), `responded` (a reply is stored, not yet verified), `verified`, `rejected`,
    `error` (no reply: not an attempt in the method's sense, but its reported cost is booked).
    `worker` is the broker process that made it.
    """

    __tablename__ = "attempts"
    __table_args__ = (Index("ix_attempts_task", "task_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"))
    stage: Mapped[int] = mapped_column(Integer)
    provider: Mapped[str] = mapped_column(String(200))
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    worker: Mapped[str | None] = mapped_column(String(64))
    input_tokens: Mapped[int | None]
    output_tokens: Mapped[int | None]
    cost_micro: Mapped[int] = mapped_column(default=0)
    verified: Mapped[bool | None] = mapped_column(Boolean)
    verdict: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    reply: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Call(Base):
    """One provider call and its reservation: `held` (worst case reserved), then `settled` or `released`.

    The id is the call id sent to the provider; settling or releasing a call twice is a no-op.
    `flagged` marks a reply whose reported usage cost more than the worst case it was allowed.
    """

    __tablename__ = "calls"
    __table_args__ = (Index("ix_calls_task_state", "task_id", "state"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"))
    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id"))
    provider: Mapped[str] = mapped_column(String(200))
    reserved_micro: Mapped[int]
    cost_micro: Mapped[int | None]
    state: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(DateTime)


class LedgerTransaction(Base):
    """One balanced money movement: a `charge`, a `refund` or a `provider_spend`."""

    __tablename__ = "ledger_transactions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(24))
    task_id: Mapped[str | None] = mapped_column(ForeignKey("tasks.id"), index=True)
    call_id: Mapped[str | None] = mapped_column(ForeignKey("calls.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class LedgerEntry(Base):
    """One leg of a transaction: a signed amount on an account; a transaction's legs sum to zero."""

    __tablename__ = "ledger_entries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"), index=True)
    account: Mapped[str] = mapped_column(String(240), index=True)
    amount_micro: Mapped[int]


class AttemptToken(Base):
    """The one-time key an agent harness uses at the gateway during one attempt (`mkat_<id>_<secret>`).

    Only the SHA-256 of the secret is stored; `steps` counts the gateway calls made with it, at
    most `max_steps`; it works while `active` and before `expires_at` (unix seconds).
    """

    __tablename__ = "attempt_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"))
    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id"), unique=True)
    worker: Mapped[str] = mapped_column(String(64))
    max_steps: Mapped[int] = mapped_column(Integer)
    steps: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[float] = mapped_column(Float)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
