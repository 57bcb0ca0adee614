"""The task runner: claim a task, walk its cascade attempt by attempt, verify, finish and charge.

Plain code over the store, the provider clients and the verifiers; no HTTP of its own.
Every step is stored as it happens (attempt row, call reservation, settlement, verdict), so
a runner killed at any line leaves a task that `run` resumes: an interrupted call is booked
at its worst case (the provider may have billed it), an unverified reply is verified again.

The cap rule (`expected-attempt-fits`, stated in the plan): at stage m, start another
attempt of provider p while the stage's spend plus the expected cost of one attempt of p
fits under the stage's cap, the expected cost being the mean of this task's earlier
attempts of p, or before the first one the plan's `attempt_cost[p]`. Separately every call
reserves its worst case, with `max_tokens` lowered to fit the stage's cap and the task's
hard limit (see `budget`).
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from modelarb.service import ledger
from modelarb.service.agents import Harness, run_harness
from modelarb.service.budget import LeaseLost, release_call, reserve_call, settle_call
from modelarb.service.gateway import close_tokens, open_token
from modelarb.service.observability import Metrics
from modelarb.service.providers import ProviderClient, prompt_token_bound
from modelarb.service.states import (
    CANCELLED,
    FAILED,
    PER_SOLUTION,
    QUEUED,
    RUNNING,
    SOLVED,
    UNSOLVED,
    final_charge,
)
from modelarb.service.store.engine import Store
from modelarb.service.store.tables import Attempt, Call, Customer, Task, utcnow
from modelarb.service.verifiers import MAX_REPLY_CHARS, Verdict, VerifierContext, verify

log = logging.getLogger("modelarb.tasks")
ATTEMPTED = ("verified", "rejected")
NO_ROOM = "no room"
MIN_MAX_TOKENS = 1
INTERRUPTED = "interrupted: the broker stopped during this call; booked at its worst case"


@dataclass(frozen=True)
class Made:
    """A provider call made for an attempt: the attempt as stored, and whether a failure may be retried."""

    attempt: Attempt
    retryable: bool
    retry_after_s: float | None


@dataclass(frozen=True)
class RunnerSetup:
    """What every runner of one broker shares: the store, provider clients, the plan's cost estimates, verifiers."""

    store: Store
    clients: Mapping[str, ProviderClient]
    attempt_cost_micro: Mapping[str, int]
    verifier_context: Callable[[Task, str], VerifierContext]
    lease_s: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    metrics: Metrics | None = None
    max_attempts_per_stage: int = 100
    harness: Harness | None = None
    gateway_url: str | None = None


class TaskRunner:
    """One worker: claims tasks (`claim`) and runs each to a final state (`run`)."""

    def __init__(self, setup: RunnerSetup, worker: str, rng: random.Random | None = None) -> None:
        self.setup, self.worker = setup, worker
        self.rng = rng or random.Random()

    # --- claiming ---

    def claim(self) -> str | None:
        """Take the oldest queued task, or a running one whose holder's lease expired; None if there is none."""
        now = time.time()
        with self.setup.store.transaction() as session:
            query = (
                select(Task.id)
                .where((Task.state == QUEUED) | ((Task.state == RUNNING) & (Task.lease_until < now)))
                .order_by(Task.created_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            task_id = session.execute(query).scalar_one_or_none()
            if task_id is None:
                return None
            session.execute(
                update(Task)
                .where(Task.id == task_id)
                .values(state=RUNNING, worker=self.worker, lease_until=now + self.setup.lease_s, updated_at=utcnow())
            )
            return str(task_id)

    # --- running ---

    def run(self, task_id: str) -> str:
        """Walk the task's cascade from where it stands to a final state; returns that state.

        Raises LeaseLost if another worker took the task meanwhile (this one then stops).
        """
        self._recover(task_id)
        task = self._load(task_id)
        if task.state != RUNNING:
            return task.state
        failures = []
        for stage, provider in enumerate(task.order):
            outcome = self._run_stage(task, stage, provider)
            if outcome in (SOLVED, CANCELLED):
                return outcome
            if outcome == FAILED:
                last = self._attempts(task.id, stage)[-1]
                failures.append(
                    f"{provider} failed after {self.setup.clients[provider].config.max_retries} retries: {last.error}"
                )
        if failures:
            return self._finish(task.id, FAILED, error="; ".join(failures))
        return self._finish(task.id, UNSOLVED)

    def _run_stage(self, task: Task, stage: int, provider: str) -> str:
        """Attempts of one provider under the cap rule; SOLVED, CANCELLED, FAILED (provider down) or UNSOLVED.

        The stage's attempts are read once and then kept here: only this worker adds to them.
        """
        client = self.setup.clients[provider]
        cap = int(task.caps_micro[stage])
        prompt_tokens = prompt_token_bound(task.messages)
        attempts = self._attempts(task.id, stage)
        retries = 0
        while True:
            costs = [a.cost_micro for a in attempts if a.state in ATTEMPTED]
            stage_spent = sum(a.cost_micro for a in attempts)
            expected = sum(costs) / len(costs) if sum(costs) > 0 else self.setup.attempt_cost_micro[provider]
            if stage_spent + expected > cap or len(costs) >= self.setup.max_attempts_per_stage:
                return UNSOLVED
            if client.config.attempt == "agent":
                current = self._load(task.id)
                if current.cancel_requested:
                    return self._finish(task.id, CANCELLED)
                room = min(cap - stage_spent, current.hard_limit_micro - current.spent_micro - current.reserved_micro)
                if client.max_tokens_within(room, prompt_tokens) < MIN_MAX_TOKENS:
                    return UNSOLVED
                attempt = self._agent_attempt(task, stage, provider, len(costs))
                attempts.append(attempt)
                if attempt.cost_micro == 0 and attempt.reply is None:  # a harness that never reached the gateway
                    return FAILED
                if attempt.state == "responded" and self._verify(task, attempt).verified:
                    return self._finish(task.id, SOLVED, solution=attempt.reply)
                continue
            made = self._attempt(task, stage, provider, len(costs), prompt_tokens, cap - stage_spent)
            if made == CANCELLED:
                return self._finish(task.id, CANCELLED)
            if not isinstance(made, Made):  # not even a one-token call fits what remains
                if self.setup.metrics is not None:
                    self.setup.metrics.refusals.labels("task_cap").inc()
                return UNSOLVED
            attempts.append(made.attempt)
            if made.attempt.state == "error":
                if not made.retryable or retries >= client.config.max_retries:
                    return FAILED
                if self.setup.metrics is not None:
                    self.setup.metrics.retries.labels(provider).inc()
                self.setup.sleep(client.backoff_s(retries, made.retry_after_s, self.rng))
                retries += 1
                continue
            retries = 0
            if made.attempt.state == "responded" and self._verify(task, made.attempt).verified:
                return self._finish(task.id, SOLVED, solution=made.attempt.reply)

    def _attempt(
        self, task: Task, stage: int, provider: str, number: int, prompt_tokens: int, stage_room: int
    ) -> Made | str:
        """One provider call for attempt `number`: reserve, call, settle.

        Returns CANCELLED if the customer cancelled, NO_ROOM if not even a one-token call fits what
        remains of the stage's cap and the task's hard limit (`max_tokens` is lowered to fit).
        """
        client = self.setup.clients[provider]
        call_id = uuid.uuid4().hex
        with self.setup.store.transaction() as session:
            current = self._check_lease(session, task.id)
            if current.cancel_requested:
                return CANCELLED
            room = min(stage_room, current.hard_limit_micro - current.spent_micro - current.reserved_micro)
            max_tokens = client.max_tokens_within(room, prompt_tokens)
            if max_tokens < MIN_MAX_TOKENS:
                return NO_ROOM
            worst = client.worst_case_micro(prompt_tokens, max_tokens)
            attempt = Attempt(
                task_id=task.id, stage=stage, provider=provider, number=number, state="calling", worker=self.worker
            )
            session.add(attempt)
            session.flush()
            if not reserve_call(session, task.id, self.worker, attempt, call_id, worst, int(task.caps_micro[stage])):
                session.rollback()
                return NO_ROOM
            current.lease_until = time.time() + self.setup.lease_s
        metadata = {"task": task.id, "attempt": str(number)}
        if task.instance:
            metadata["instance"] = task.instance
        outcome = client.call(task.messages, max_tokens=max_tokens, call_id=call_id, metadata=metadata)
        if self.setup.metrics is not None:
            self.setup.metrics.call_latency.labels(provider).observe(outcome.latency_s)
            self.setup.metrics.calls.labels(provider, "ok" if outcome.ok else "error").inc()
        reported = worst if outcome.usage_missing else int(outcome.reported_cost_micro or 0)
        notes = [] if outcome.ok else [outcome.error or "the call failed"]
        if outcome.usage_missing:
            notes.append("no usage reported for a call the provider may bill; booked at the call's worst case")
        if reported > worst:
            notes.append(f"reported usage costs {reported} micro-units, above the call's worst case; booked at it")
        with self.setup.store.transaction() as session:
            self._check_lease(session, task.id)
            row = session.get(Attempt, attempt.id)
            assert row is not None
            if outcome.ok or reported > 0:
                booked = settle_call(session, call_id, reported, error=outcome.error, status_code=outcome.status_code)
            else:
                booked = 0
                release_call(session, call_id, error=outcome.error, status_code=outcome.status_code)
            row.state = "responded" if outcome.ok else "error"
            row.reply = outcome.text if outcome.ok else None
            if row.reply is not None and len(row.reply) > MAX_REPLY_CHARS:
                row.state, row.verified = "rejected", False
                row.verdict = f"the reply is {len(row.reply)} characters long: the limit is {MAX_REPLY_CHARS}"
                row.reply = row.reply[:MAX_REPLY_CHARS]
            row.input_tokens, row.output_tokens = outcome.input_tokens, outcome.output_tokens
            row.cost_micro, row.latency_ms = booked, outcome.latency_s * 1000
            row.error = "; ".join(notes) or None
        log.info(
            "provider call",
            extra={
                "task_id": task.id,
                "provider": provider,
                "stage": stage,
                "attempt": number,
                "cost_micro": row.cost_micro,
                "ok": outcome.ok,
                "error": row.error,
            },
        )
        return Made(row, outcome.retryable, outcome.retry_after_s)

    def _agent_attempt(self, task: Task, stage: int, provider: str, number: int) -> Attempt:
        """One run of the agent harness, its model calls metered by the gateway; the attempt it leaves."""
        harness, gateway_url = self.setup.harness, self.setup.gateway_url
        if harness is None or gateway_url is None:
            raise RuntimeError(f"{provider} makes agent attempts, but the broker has no harness or gateway URL")
        with self.setup.store.transaction() as session:
            self._check_lease(session, task.id)
            attempt = Attempt(
                task_id=task.id, stage=stage, provider=provider, number=number, state="calling", worker=self.worker
            )
            session.add(attempt)
            session.flush()
            token = open_token(session, attempt, self.worker, harness.max_steps, harness.timeout_s + self.setup.lease_s)
        started = time.monotonic()
        try:
            candidate, story = run_harness(
                harness, task.messages, task.instance, task.task_metadata, gateway_url, token
            )
        finally:
            with self.setup.store.transaction() as session:
                close_tokens(session, attempt.id)
        self._await_calls(attempt.id, self.setup.clients[provider].config.timeout_s + 5)
        with self.setup.store.transaction() as session:
            self._check_lease(session, task.id)
            row = session.get(Attempt, attempt.id)
            assert row is not None
            row.latency_ms = (time.monotonic() - started) * 1000
            row.reply = candidate
            row.state = "responded" if candidate is not None else "rejected"
            if candidate is None:
                row.verified, row.verdict = False, story
            elif story != "the harness exited 0":
                row.error = story
        log.info(
            "agent attempt",
            extra={
                "task_id": task.id,
                "provider": provider,
                "stage": stage,
                "attempt": number,
                "cost_micro": row.cost_micro,
                "story": story,
            },
        )
        return row

    def _await_calls(self, attempt_id: int, timeout_s: float) -> None:
        """Wait for the gateway calls of an ended attempt to settle; book any still held at their worst case."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self.setup.store.reading() as session:
                held = session.execute(
                    select(Call.id, Call.reserved_micro).where(Call.attempt_id == attempt_id, Call.state == "held")
                ).all()
            if not held:
                return
            if time.monotonic() > deadline:
                with self.setup.store.transaction() as session:
                    attempt = session.get(Attempt, attempt_id, with_for_update=True)
                    assert attempt is not None
                    for call_id, reserved in held:
                        attempt.cost_micro += settle_call(session, call_id, reserved, error=INTERRUPTED)
                return
            self.setup.sleep(0.02)

    def _verify(self, task: Task, attempt: Attempt) -> Verdict:
        """Check a stored reply with the task's verifier and record the verdict (in the store and on `attempt`)."""
        context = self.setup.verifier_context(task, attempt.provider)
        verdict = verify(task.verifier, attempt.reply or "", context)
        with self.setup.store.transaction() as session:
            self._check_lease(session, task.id)
            row = session.get(Attempt, attempt.id)
            assert row is not None
            row.state = "verified" if verdict.verified else "rejected"
            row.verified, row.verdict = verdict.verified, verdict.reason
        attempt.state, attempt.verified, attempt.verdict = row.state, row.verified, row.verdict  # the caller's copy
        return verdict

    # --- finishing ---

    def _finish(self, task_id: str, state: str, solution: str | None = None, error: str | None = None) -> str:
        """Move the task to a final state and settle what the customer owes, in one transaction."""
        with self.setup.store.transaction() as session:
            task = self._check_lease(session, task_id)
            finish(session, task, state, solution)
            task.error = error
            charged = task.charged_micro
        log.info("task finished", extra={"task_id": task_id, "state": state, "charged_micro": charged, "error": error})
        return state

    def fail(self, task_id: str, error: str) -> None:
        """End a task the broker could not run, if this worker still holds it: in one transaction, calls in
        flight booked at their worst case, attempts cut short, tokens closed, the task failed and refunded."""
        try:
            with self.setup.store.transaction() as session:
                self._settle_leftovers(session, task_id)
                task = self._check_lease(session, task_id)
                finish(session, task, FAILED)
                task.error = error
        except LeaseLost:
            pass

    # --- recovery ---

    def _recover(self, task_id: str) -> None:
        """Settle what a stopped worker left: calls in flight (at their worst case), attempts cut short, and a
        verified attempt it did not get to finish the task with; verify the replies it left unverified."""
        with self.setup.store.transaction() as session:
            self._settle_leftovers(session, task_id)
        task = self._load(task_id)
        attempts = self._attempts(task_id)
        verified = [a for a in attempts if a.state == "verified"]
        if verified:
            self._finish(task_id, SOLVED, solution=verified[0].reply)
            return
        for attempt in attempts:
            if attempt.state == "responded" and self._verify(task, attempt).verified:
                self._finish(task_id, SOLVED, solution=attempt.reply)
                return

    def _settle_leftovers(self, session: Session, task_id: str) -> None:
        """Book held calls at their worst case, end attempts still `calling`, close their tokens (lease checked)."""
        self._check_lease(session, task_id)
        held = session.execute(
            select(Call.id, Call.attempt_id, Call.reserved_micro).where(Call.task_id == task_id, Call.state == "held")
        ).all()
        for call_id, attempt_id, reserved in held:
            booked = settle_call(session, call_id, reserved, error=INTERRUPTED)
            attempt = session.get(Attempt, attempt_id, with_for_update=True)
            if attempt is not None:
                attempt.cost_micro += booked
        for attempt in session.execute(
            select(Attempt).where(Attempt.task_id == task_id, Attempt.state == "calling").with_for_update()
        ).scalars():
            attempt.state, attempt.error = "error", INTERRUPTED
            close_tokens(session, attempt.id)

    # --- reading ---

    def _load(self, task_id: str) -> Task:
        with self.setup.store.reading() as session:
            task = session.get(Task, task_id)
            assert task is not None
            return task

    def _attempts(self, task_id: str, stage: int | None = None) -> list[Attempt]:
        with self.setup.store.reading() as session:
            query = select(Attempt).where(Attempt.task_id == task_id)
            if stage is not None:
                query = query.where(Attempt.stage == stage)
            return list(session.execute(query.order_by(Attempt.id)).scalars())

    def _check_lease(self, session: Session, task_id: str) -> Task:
        task = session.get(Task, task_id, with_for_update=True)
        if task is None or task.worker != self.worker or task.state != RUNNING:
            raise LeaseLost(task_id)
        return task


def renew_leases(store: Store, held: dict[str, str], lease_s: float) -> None:
    """Extend the lease of each task in `held` (task id -> the worker running it), if that worker still has it."""
    with store.transaction() as session:
        for task_id, worker in held.items():
            session.execute(
                update(Task)
                .where(Task.id == task_id, Task.worker == worker, Task.state == RUNNING)
                .values(lease_until=time.time() + lease_s)
            )


def finish(session: Session, task: Task, state: str, solution: str | None = None) -> None:
    """Final state and the customer's settlement (charge, refund, release), in the caller's transaction."""
    calls_made = session.execute(select(Call.id).where(Call.task_id == task.id).limit(1)).first() is not None
    owed = final_charge(task.charging, state, task.price_micro, calls_made)
    delta = owed - task.charged_micro
    if task.charging == PER_SOLUTION:
        session.execute(
            update(Customer)
            .where(Customer.id == task.customer_id)
            .values(reserved_micro=Customer.reserved_micro - task.price_micro)
        )
    if delta:
        (ledger.charge if delta > 0 else ledger.refund)(session, task, abs(delta))
        session.execute(
            update(Customer).where(Customer.id == task.customer_id).values(charged_micro=Customer.charged_micro + delta)
        )
    task.charged_micro = owed
    task.state, task.solution, task.finished_at = state, solution, utcnow()
    task.updated_at, task.worker, task.lease_until = utcnow(), None, None
