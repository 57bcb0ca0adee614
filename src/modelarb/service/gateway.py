"""The metering gateway: an agent harness's model calls, each reserved, forwarded and booked like a chat attempt.

An agent attempt gets a one-time token (`open_token`). Each call made with it (`begin_call`)
counts a step, reserves its worst case against what remains of the attempt's budget (the
stage's cap less what the task already spent on that stage, and the task's hard limit), with
`max_tokens` lowered to fit; `finish_call` books what the provider reports (the worst case when
it reports nothing for a call it may bill) and adds it to the attempt. When not even a
one-token call fits, or the steps or the token are used up, the call is refused with a final
error (`Refusal`): HTTP 402 `budget_exhausted`, 403 `attempt_over` or `step_limit`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from modelarb.service.budget import LeaseLost, release_call, reserve_call, settle_call, stage_spend
from modelarb.service.providers import CallOutcome, ProviderClient, prompt_token_bound
from modelarb.service.store.engine import Store
from modelarb.service.store.tables import Attempt, AttemptToken, Task

_TOKEN = re.compile(r"^mkat_([0-9a-f]{16})_([A-Za-z0-9_-]{20,100})$")
MESSAGE_ROLES = ("system", "developer", "user", "assistant", "tool")


class Refusal(Exception):
    """A gateway call refused: `status` and `code` say why; harnesses should treat 402 and 403 as final."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Grant:
    """A call the gateway reserved: forward it with these `messages`, `max_tokens`, `call_id` and `metadata`."""

    task_id: str
    attempt_id: int
    provider: str
    call_id: str
    messages: list[dict[str, Any]]
    max_tokens: int
    worst_micro: int
    metadata: dict[str, str]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def open_token(session: Any, attempt: Attempt, worker: str, max_steps: int, ttl_s: float) -> str:
    """A new token for `attempt` (in the caller's transaction); returned once, stored hashed."""
    token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    session.add(
        AttemptToken(
            id=token_id,
            secret_sha256=_digest(secret),
            task_id=attempt.task_id,
            attempt_id=attempt.id,
            worker=worker,
            max_steps=max_steps,
            steps=0,
            expires_at=time.time() + ttl_s,
            active=True,
        )
    )
    return f"mkat_{token_id}_{secret}"


def close_tokens(session: Any, attempt_id: int) -> None:
    """End an attempt's token: later calls with it are refused."""
    session.execute(update(AttemptToken).where(AttemptToken.attempt_id == attempt_id).values(active=False))


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Refusal(400, "invalid_request", "messages must be a non-empty list of chat messages")
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in MESSAGE_ROLES:
            raise Refusal(400, "invalid_request", f"each message needs a role among {', '.join(MESSAGE_ROLES)}")
        content = message.get("content")
        parts = content if isinstance(content, list) else []
        if not (content is None or isinstance(content, str) or all(_text_part(part) for part in parts)):
            raise Refusal(
                400,
                "invalid_request",
                "message content must be text (a string or text parts): the gateway bounds a call's cost by its text",
            )
    return messages


def _text_part(part: Any) -> bool:
    return isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)


def _requested_max_tokens(body: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise Refusal(400, "invalid_request", f"{name} must be a positive integer")
            return value
    return None


def begin_call(store: Store, clients: dict[str, ProviderClient], token: str, body: dict[str, Any]) -> Grant:
    """Check the token, count the step and reserve the call's worst case; raises Refusal."""
    match = _TOKEN.match(token)
    if match is None:
        raise Refusal(401, "invalid_token", "missing or malformed attempt token")
    token_id, secret = match.groups()
    messages = _messages(body)
    requested = _requested_max_tokens(body)
    with store.transaction() as session:
        row = session.get(AttemptToken, token_id, with_for_update=True)
        if row is None or not hmac.compare_digest(row.secret_sha256, _digest(secret)):
            raise Refusal(401, "invalid_token", "unknown attempt token")
        if not row.active or row.expires_at < time.time():
            raise Refusal(403, "attempt_over", "this attempt is over: its token no longer works")
        if row.steps >= row.max_steps:
            raise Refusal(403, "step_limit", f"this attempt has made its {row.max_steps} calls: the step limit")
        row.steps += 1
        turn = row.steps - 1
        attempt = session.get(Attempt, row.attempt_id)
        task = session.get(Task, row.task_id, with_for_update=True)
        assert attempt is not None and task is not None
        client = clients[attempt.provider]
        cap = int(task.caps_micro[attempt.stage])
        prompt_tokens = prompt_token_bound(messages)
        room = min(
            cap - stage_spend(session, task.id, attempt.stage),
            task.hard_limit_micro - task.spent_micro - task.reserved_micro,
        )
        max_tokens = min(client.max_tokens_within(room, prompt_tokens), requested or client.config.max_tokens)
        call_id = uuid.uuid4().hex
        worst = client.worst_case_micro(prompt_tokens, max_tokens)
        try:
            reserved = max_tokens >= 1 and reserve_call(session, task.id, row.worker, attempt, call_id, worst, cap)
        except LeaseLost:
            raise Refusal(403, "attempt_over", "this attempt's task is no longer running here") from None
        if not reserved:
            raise Refusal(
                402,
                "budget_exhausted",
                "the attempt's budget is spent: not even a one-token call fits what remains of its cap",
            )
        metadata = {"task": task.id, "attempt": str(attempt.number), "turn": str(turn)}
        if task.instance:
            metadata["instance"] = task.instance
        return Grant(task.id, attempt.id, attempt.provider, call_id, messages, max_tokens, worst, metadata)


def finish_call(store: Store, grant: Grant, outcome: CallOutcome) -> int:
    """Book a forwarded call (the worst case if the provider may bill it but reports no usage); returns the amount."""
    reported = grant.worst_micro if outcome.usage_missing else int(outcome.reported_cost_micro or 0)
    with store.transaction() as session:
        if outcome.ok or reported > 0:
            booked = settle_call(session, grant.call_id, reported, error=outcome.error, status_code=outcome.status_code)
        else:
            booked = 0
            release_call(session, grant.call_id, error=outcome.error, status_code=outcome.status_code)
        attempt = session.get(Attempt, grant.attempt_id, with_for_update=True)
        assert attempt is not None
        attempt.cost_micro += booked
        attempt.input_tokens = (attempt.input_tokens or 0) + (outcome.input_tokens or 0)
        attempt.output_tokens = (attempt.output_tokens or 0) + (outcome.output_tokens or 0)
    return booked


def token_provider(store: Store, token: str) -> str | None:
    """The provider a live token's attempt buys from, or None."""
    match = _TOKEN.match(token)
    if match is None:
        return None
    with store.reading() as session:
        row = session.get(AttemptToken, match.group(1))
        if row is None or not hmac.compare_digest(row.secret_sha256, _digest(match.group(2))) or not row.active:
            return None
        return str(session.execute(select(Attempt.provider).where(Attempt.id == row.attempt_id)).scalar_one())
