"""Request and response bodies of the API (JSON; money as unit amounts and as integer micro-units)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Charging = Literal["per_task", "per_solution"]
MAX_PRICE = 1e9


class Message(BaseModel):
    """One chat message of the problem, as in OpenAI's chat-completions API."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "developer", "user", "assistant"]
    content: str = Field(max_length=200_000)


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
    expires_at: datetime


class TaskRequestBody(BaseModel):
    """A task: the problem, how to verify a solution, and the most the customer will pay."""

    model_config = ConfigDict(extra="forbid")
    messages: list[Message] = Field(min_length=1, max_length=256)
    verifier: dict[str, Any] = Field(
        description="A verifier spec: {'kind': 'exact'|'python-tests'|'command'|'replay', …}."
    )
    max_price: float = Field(gt=0, le=MAX_PRICE, description="The most the customer pays, in the plan's cost unit.")
    quote_id: str | None = Field(None, max_length=64)
    charging: Charging | None = None
    instance: str | None = Field(None, min_length=1, max_length=300, description="The problem instance's id, if any.")
    metadata: dict[str, str] = Field(default_factory=dict, max_length=32)

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
    created_at: datetime
    finished_at: datetime | None


class TaskPage(BaseModel):
    tasks: list[TaskOut]
    next_after: str | None = Field(description="Pass as ?after= for the next page; null on the last page.")


class CustomerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    spending_limit: float | None = Field(None, ge=0, le=MAX_PRICE)


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer: str | None = Field(None, min_length=1, max_length=200, description="None: an admin key.")


class KeyOut(BaseModel):
    key: str
    key_id: str
    customer: str | None
