"""Request and response bodies of the API (JSON; money as unit amounts and as integer micro-units)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

Charging = Literal["per_task", "per_solution"]
MAX_PRICE = 1e9


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    return text


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


Text = Annotated[str, AfterValidator(_no_nul)]
UtcTime = Annotated[datetime, AfterValidator(_utc)]


class ErrorDetail(BaseModel):
    type: str = Field(
        description="What kind of error: invalid, invalid_json, unauthorized, forbidden, not_found, "
        "conflict, payment, too_large, internal."
    )
    message: str = Field(description="What went wrong and what to do.")


class ErrorBody(BaseModel):
    """Every error the API answers (4xx, and 500 should the broker fail)."""

    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in {
        400: "Invalid JSON",
        401: "Missing, unknown or revoked key",
        402: "Above the max price or the spending limit",
        403: "The wrong kind of key",
        404: "Unknown (or another customer's) task, quote or key",
        409: "Idempotency key reused with another body, or an expired quote",
        413: "Request body too large",
        422: "A field out of range",
    }.items()
}


class Message(BaseModel):
    """One chat message of the problem, as in OpenAI's chat-completions API."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "developer", "user", "assistant"]
    content: Text = Field(max_length=200_000)


class QuoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    charging: Charging | None = Field(None, description="per_task (default) or per_solution.")


class QuoteOut(BaseModel):
    id: str
    plan_id: str
    charging: str
    price: float
    price_micro: int
    market_price: float
    market_price_micro: int
    expected_solve_rate: float
    cost_unit: str
    expires_at: UtcTime


class TaskRequestBody(BaseModel):
    """A task: the problem, how to verify a solution, and the most the customer will pay."""

    model_config = ConfigDict(extra="forbid")
    messages: list[Message] = Field(min_length=1, max_length=256)
    verifier: dict[str, Any] = Field(
        description="A verifier spec: {'kind': 'exact'|'python-tests'|'command'|'replay', …}."
    )
    max_price: float = Field(gt=0, le=MAX_PRICE, description="The most the customer pays, in the plan's cost unit.")
    quote_id: Text | None = Field(None, max_length=64)
    charging: Charging | None = None
    instance: Text | None = Field(None, min_length=1, max_length=300, description="The problem instance's id, if any.")
    metadata: dict[Text, Text] = Field(default_factory=dict, max_length=32)

    @field_validator("max_price")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class AttemptOut(BaseModel):
    provider: str
    stage: int
    number: int
    state: str
    input_tokens: int | None
    output_tokens: int | None
    cost: float
    cost_micro: int
    verified: bool | None
    verdict: str | None
    latency_ms: float | None
    error: str | None


class TaskOut(BaseModel):
    id: str
    state: str
    charging: str
    price: float
    price_micro: int
    charged: float
    charged_micro: int
    cost_unit: str
    plan_id: str
    quote_id: str | None
    instance: str | None
    cascade: dict[str, Any]
    attempts: list[AttemptOut]
    solution: str | None
    error: str | None
    created_at: UtcTime
    finished_at: UtcTime | None


class TaskPage(BaseModel):
    tasks: list[TaskOut]
    next_after: str | None = Field(description="Pass as ?after= for the next page; null on the last page.")


class CustomerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text = Field(min_length=1, max_length=200)
    spending_limit: float | None = Field(None, ge=0, le=MAX_PRICE)


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer: Text | None = Field(None, min_length=1, max_length=200, description="None: an admin key.")


class KeyOut(BaseModel):
    key: str
    key_id: str
    customer: str | None
