"""Selling: quotes, and admitting a task (price, idempotency, spending limit, its cascade) in one transaction."""

from __future__ import annotations

import hashlib
import json
import math
import random
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from modelarb.core.plan import Plan
from modelarb.errors import ServiceError
from modelarb.service import ledger
from modelarb.service.budget import admit_customer
from modelarb.service.money import MICRO, to_micro
from modelarb.service.states import CHARGING, PER_TASK, QUEUED
from modelarb.service.store.engine import Store
from modelarb.service.store.tables import PlanRow, Quote, Task, utcnow


class Rejected(ServiceError):
    """A request the broker refuses; `reason` is one of: invalid, not_found, conflict, payment."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Terms:
    """What the broker sells under one plan: the price it undercuts, its discount, its expected solve rate."""

    plan: Plan
    plan_id: str
    discount: Decimal
    quote_ttl_s: float
    task_hard_limit_micro: int | None = None

    @property
    def market_price_micro(self) -> int:
        return to_micro(self.plan.market_price)

    @property
    def solve_rate(self) -> float:
        """The solve rate expected under the plan's cap rule (the model's, for plans without one)."""
        return self.plan.live.solve_rate if self.plan.live is not None else self.plan.solve_rate

    def price_micro(self, charging: str) -> int:
        """per_task: the market price less the discount; per_solution: that divided by the solve rate."""
        per_task = Decimal(self.market_price_micro) * (1 - self.discount)
        price = per_task if charging == PER_TASK else per_task / Decimal(repr(self.solve_rate))
        return max(int(price.to_integral_value()), 1)


def plan_id_of(plan: Plan) -> str:
    """A plan's id: `plan-` and the first 24 hex digits of the SHA-256 of its JSON."""
    text = json.dumps(plan.to_dict(), sort_keys=True)
    return "plan-" + hashlib.sha256(text.encode()).hexdigest()[:24]


def register_plan(store: Store, plan: Plan) -> str:
    """Store the plan (once) and return its id."""
    plan_id = plan_id_of(plan)
    with store.transaction() as session:
        if session.get(PlanRow, plan_id) is None:
            session.add(PlanRow(id=plan_id, body=plan.to_dict()))
    return plan_id


def create_quote(store: Store, terms: Terms, customer_id: int, charging: str) -> Quote:
    """A price for one verified solution (or one task), valid for `terms.quote_ttl_s` seconds."""
    if charging not in CHARGING:
        raise Rejected("invalid", f"charging must be one of {', '.join(CHARGING)}, got {charging!r}")
    now = utcnow()
    quote = Quote(
        id="q-" + uuid.uuid4().hex,
        customer_id=customer_id,
        plan_id=terms.plan_id,
        charging=charging,
        price_micro=terms.price_micro(charging),
        market_price_micro=terms.market_price_micro,
        solve_rate=terms.solve_rate,
        created_at=now,
        expires_at=now + timedelta(seconds=terms.quote_ttl_s),
    )
    with store.transaction() as session:
        session.add(quote)
    return quote


@dataclass(frozen=True)
class TaskRequest:
    """A validated task submission (the API layer builds it from the request body)."""

    messages: list[dict[str, Any]]
    verifier: dict[str, Any]
    max_price: float
    quote_id: str | None
    charging: str | None
    instance: str | None
    metadata: dict[str, Any]

    def fingerprint(self) -> str:
        """SHA-256 of the request's content: a retry with the same idempotency key must match it."""
        body = {
            "messages": self.messages,
            "verifier": self.verifier,
            "max_price": self.max_price,
            "quote_id": self.quote_id,
            "charging": self.charging,
            "instance": self.instance,
            "metadata": self.metadata,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def submit_task(
    store: Store,
    terms: Terms,
    customer_id: int,
    request: TaskRequest,
    idempotency_key: str | None,
    rng: random.Random,
    default_charging: str = PER_TASK,
) -> tuple[Task, bool]:
    """Admit a task, or return the one an earlier request with the same idempotency key admitted.

    Returns (task, created). The price is the quote's (if named) or the current one; it must
    not exceed the customer's max price; per_task charges it now, per_solution reserves it
    against the customer's spending limit. Raises Rejected.
    """
    fingerprint = request.fingerprint()
    for _ in range(2):
        try:
            with store.transaction() as session:
                if idempotency_key is not None:
                    earlier = session.execute(
                        select(Task).where(Task.customer_id == customer_id, Task.idempotency_key == idempotency_key)
                    ).scalar_one_or_none()
                    if earlier is not None:
                        if earlier.request_sha256 != fingerprint:
                            raise Rejected(
                                "conflict",
                                f"the Idempotency-Key {idempotency_key!r} was used for a different request",
                            )
                        return earlier, False
                task = _new_task(
                    session, terms, customer_id, request, idempotency_key, fingerprint, rng, default_charging
                )
                return task, True
        except IntegrityError:  # a concurrent request with the same key won the race: return its task
            if idempotency_key is None:
                raise
    raise Rejected("conflict", f"the Idempotency-Key {idempotency_key!r} is being used by a concurrent request")


def _new_task(
    session: Any,
    terms: Terms,
    customer_id: int,
    request: TaskRequest,
    idempotency_key: str | None,
    fingerprint: str,
    rng: random.Random,
    default_charging: str,
) -> Task:
    charging = request.charging or default_charging
    if request.quote_id is not None:
        quote = session.get(Quote, request.quote_id)
        if quote is None or quote.customer_id != customer_id:
            raise Rejected("not_found", f"no quote {request.quote_id!r}")
        if quote.expires_at < utcnow():
            raise Rejected(
                "conflict", f"the quote {quote.id} expired at {quote.expires_at.isoformat()}Z; ask for a new one"
            )
        if quote.plan_id != terms.plan_id:
            raise Rejected("conflict", f"the quote {quote.id} was made under another plan; ask for a new one")
        if request.charging is not None and request.charging != quote.charging:
            raise Rejected("invalid", f"the quote {quote.id} is {quote.charging}, the task asks for {request.charging}")
        charging, price = quote.charging, quote.price_micro
    else:
        price = terms.price_micro(charging)
    max_price = to_micro(request.max_price)
    if price > max_price:
        raise Rejected(
            "payment",
            f"the price is {price / MICRO:.6f} {terms.plan.cost_unit}, above your max_price {request.max_price}",
        )
    index = rng.choices(range(len(terms.plan.cascades)), weights=terms.plan.weights)[0]
    cascade = terms.plan.cascades[index]
    caps = [math.floor(cap * MICRO) for cap in cascade.caps]
    hard_limit = sum(caps) if terms.task_hard_limit_micro is None else min(sum(caps), terms.task_hard_limit_micro)
    task = Task(
        id="t-" + uuid.uuid4().hex,
        customer_id=customer_id,
        plan_id=terms.plan_id,
        quote_id=request.quote_id,
        idempotency_key=idempotency_key,
        request_sha256=fingerprint,
        state=QUEUED,
        charging=charging,
        price_micro=price,
        max_price_micro=max_price,
        instance=request.instance,
        messages=request.messages,
        verifier=request.verifier,
        task_metadata=request.metadata,
        cascade_index=index,
        order=list(cascade.providers),
        caps_micro=caps,
        hard_limit_micro=hard_limit,
        charged_micro=price if charging == PER_TASK else 0,
    )
    session.add(task)
    session.flush()  # first, so a concurrent request with the same idempotency key meets the unique key, not a 402
    if not admit_customer(session, customer_id, price, charge=charging == PER_TASK):
        raise Rejected("payment", "this task would take you past your spending limit")
    if charging == PER_TASK:
        ledger.charge(session, task, price)
    return task
