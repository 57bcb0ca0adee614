"""The replay market: each provider's recorded attempts served as an OpenAI-compatible chat-completions API.

A call names the provider as `model` and the recorded instance in `metadata.instance`; it is answered
with one recorded attempt of that cell, drawn without replacement within the broker's task
(`metadata.task`, `metadata.attempt`) by a seeded permutation, so the market keeps no state. The reply
ends with a signed outcome line (see `signing`) and bills, in `usage`, tokens that cost the cell's
recorded mean cost per attempt at the market's prices.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelarb.data.outcomes import Outcomes
from modelarb.errors import ServiceError
from modelarb.service.money import MICRO
from modelarb.service.replay.faults import Faults, faulty_response
from modelarb.service.replay.signing import Outcome, sign

Price = tuple[Decimal, Decimal]
UNIFORM_PRICE: Price = (Decimal(1), Decimal(1))
OWNER = "modelarb-replay"


@dataclass(frozen=True)
class ReplayPrices:
    """Input and output price per million tokens of every replay provider, in the data's cost unit.

    The default book prices every token at 1 per million, so a token costs one micro-unit.
    """

    by_provider: Mapping[str, Price]

    @classmethod
    def book(cls, providers: Sequence[str], prices: ReplayPrices | Mapping[str, Price] | None = None) -> ReplayPrices:
        """Prices of `providers`: those given, the uniform default for the rest; each price checked."""
        given = prices.by_provider if isinstance(prices, ReplayPrices) else (prices or {})
        unknown = sorted(set(given).difference(providers))
        if unknown:
            raise ServiceError(
                f"prices given for unknown provider {', '.join(unknown)}; "
                f"the market's providers: {', '.join(providers)}"
            )
        book: dict[str, Price] = {}
        for provider in providers:
            input_price, output_price = (Decimal(str(value)) for value in given.get(provider, UNIFORM_PRICE))
            if not (input_price.is_finite() and output_price.is_finite() and input_price >= 0 and output_price > 0):
                raise ServiceError(
                    f"{provider}: prices ({input_price}, {output_price}) per million tokens: the input price "
                    "must be finite and >= 0, the output price finite and > 0"
                )
            book[provider] = (input_price, output_price)
        return cls(book)

    def of(self, provider: str) -> Price:
        """(input price, output price) per million tokens of `provider`."""
        return self.by_provider[provider]


def tokens_for_cost(
    cost_micro: Decimal, prompt_tokens: int, input_price: Decimal, output_price: Decimal
) -> tuple[int, int]:
    """(prompt, completion) tokens billing `cost_micro` micro-units at prices per million tokens.

    The completion tokens make up what the prompt does not cost, rounded to the nearest token, so
    the bill is within half an output token's price of `cost_micro`. A prompt that alone costs more
    is cut to the nearest count of prompt tokens that fits, with no completion tokens.
    """
    cost_micro = max(cost_micro, Decimal(0))
    prompt_cost = prompt_tokens * input_price
    if prompt_cost > cost_micro:
        return int((cost_micro / input_price).to_integral_value(rounding=ROUND_HALF_UP)), 0
    completion = (cost_micro - prompt_cost) / output_price
    return prompt_tokens, int(completion.to_integral_value(rounding=ROUND_HALF_UP))


@lru_cache(maxsize=16384)
def draw_order(seed: int, task: str, provider: str, instance: str, n: int) -> tuple[int, ...]:
    """The order in which task `task` draws the `n` recorded attempts of (instance, provider)."""
    digest = hashlib.blake2b(json.dumps([seed, task, provider, instance]).encode(), digest_size=16).digest()
    order = list(range(n))
    random.Random(int.from_bytes(digest, "big")).shuffle(order)
    return tuple(order)


def prompt_tokens_of(messages: Sequence[ChatMessage]) -> int:
    """The prompt tokens a request is billed: the UTF-8 bytes of its messages' text."""
    total = 0
    for message in messages:
        content = message.content
        if isinstance(content, str):
            total += len(content.encode())
        elif content is not None:
            total += sum(len(part.text.encode()) for part in content if part.text is not None)
    return total


class ContentPart(BaseModel):
    """One part of a message's content; only text parts count as prompt."""

    model_config = ConfigDict(extra="allow")
    type: str = "text"
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[ContentPart] | None = None


class ChatRequest(BaseModel):
    """The fields of an OpenAI chat-completions request the replay market reads; others are ignored."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    metadata: dict[str, str | int] | None = None
    stream: bool | None = None
    n: int | None = None


class ReplayRequestError(Exception):
    """A request the replay market refuses, answered in OpenAI's error format."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def response(self) -> JSONResponse:
        error = {"message": self.message, "type": "invalid_request_error", "param": self.param, "code": self.code}
        return JSONResponse({"error": error}, status_code=self.status)


@dataclass(frozen=True)
class Reply:
    """One replayed attempt: what the chat-completions response reports."""

    content: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    outcome: Outcome


class ReplayMarket:
    """Lookups over one market's recorded attempts: which attempt a call gets, what it bills, its signed outcome."""

    def __init__(self, outcomes: Outcomes, key: bytes, prices: ReplayPrices, seed: int) -> None:
        if not key:
            raise ServiceError("the replay key is empty; give the key the broker's replay verifier uses")
        if not np.isfinite(outcomes.cost).all():
            raise ServiceError("the market has a cost per attempt that is not a finite number; fix the data")
        self.providers = outcomes.providers
        self.prices = prices
        self.key = key
        self.seed = seed
        self.rows = {str(instance): row for row, instance in enumerate(outcomes.instances.tolist())}
        self.columns = {provider: column for column, provider in enumerate(outcomes.providers)}
        self.n = outcomes.n.tolist()
        self.cost_micro = [[Decimal(str(cost)) * MICRO for cost in row] for row in outcomes.cost.tolist()]
        if outcomes.attempts is not None and outcomes.offsets is not None:
            self.attempts: list[bool] = outcomes.attempts.tolist()
            self.offsets: list[list[int]] = outcomes.offsets.tolist()
        else:  # no recorded order: s successes then n - s failures, drawn in a random order all the same
            cells = [
                (int(n), int(s)) for n, s in zip(outcomes.n.ravel().tolist(), outcomes.s.ravel().tolist(), strict=True)
            ]
            self.attempts = [k < s for n, s in cells for k in range(n)]
            starts = [0]
            for n, _ in cells[:-1]:
                starts.append(starts[-1] + n)
            width = outcomes.n_providers
            self.offsets = [starts[r * width : (r + 1) * width] for r in range(outcomes.n_instances)]

    def column_of(self, provider: str) -> int:
        """The provider's column; an unknown one is OpenAI's 404 for an unknown model."""
        column = self.columns.get(provider)
        if column is None:
            raise ReplayRequestError(
                404,
                f"The model {provider!r} does not exist in this replay market; models: {', '.join(self.providers)}",
                "model",
                "model_not_found",
            )
        return column

    def reply(
        self, provider: str, instance: str, task: str, attempt: int, prompt_tokens: int, max_tokens: int | None
    ) -> Reply:
        """The `attempt`-th attempt (0-based) of `provider` on `instance` within `task`."""
        column = self.column_of(provider)
        row = self.rows.get(instance)
        if row is None:
            raise ReplayRequestError(
                400, f"metadata.instance {instance!r} is not a recorded instance of this market", "metadata"
            )
        n = self.n[row][column]
        if n <= 0:
            raise ReplayRequestError(400, f"{provider} has no recorded attempts on {instance}", "metadata")
        recorded = draw_order(self.seed, task, provider, instance, n)[attempt % n]
        solved = self.attempts[self.offsets[row][column] + recorded]
        input_price, output_price = self.prices.of(provider)
        prompt, completion = tokens_for_cost(self.cost_micro[row][column], prompt_tokens, input_price, output_price)
        finish_reason = "stop"
        if max_tokens is not None and completion > max_tokens:
            completion, solved, finish_reason = max_tokens, False, "length"
        outcome = Outcome(instance, provider, attempt, bool(solved))
        verdict = "cut off at max_tokens" if finish_reason == "length" else ("solved" if solved else "not solved")
        content = (
            f"Replay of recorded attempt {recorded + 1} of {n} by {provider} on {instance}: {verdict}.\n"
            f"{sign(self.key, outcome)}"
        )
        return Reply(content, finish_reason, prompt, completion, outcome)


def _parse(body: bytes) -> ChatRequest:
    try:
        return ChatRequest.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise ReplayRequestError(400, f"invalid request: {where}: {first['msg']}", where or None) from None


def _task_and_attempt(metadata: Mapping[str, str | int] | None) -> tuple[str, str, int]:
    metadata = metadata or {}
    instance = metadata.get("instance")
    if instance is None or instance == "":
        raise ReplayRequestError(
            400, "metadata.instance is required: the id of the recorded instance this call attempts", "metadata"
        )
    attempt_text = str(metadata.get("attempt", "0"))
    if not (attempt_text.isascii() and attempt_text.isdigit()):
        raise ReplayRequestError(
            400, f"metadata.attempt {attempt_text!r} must be this provider's attempt number: 0, 1, 2, ...", "metadata"
        )
    return str(instance), str(metadata.get("task", "")), int(attempt_text)


def create_replay_app(
    outcomes: Outcomes,
    key: bytes,
    prices: ReplayPrices | Mapping[str, Price] | None = None,
    *,
    seed: int = 0,
    faults: Mapping[str, Faults] | None = None,
) -> FastAPI:
    """An OpenAI-compatible app serving `outcomes`' providers as models (`/v1/models`, `/v1/chat/completions`).

    `key` signs the outcome lines (the broker's replay verifier holds the same key); `prices` are per
    million input and output tokens in the data's cost unit (default 1 and 1); `seed` fixes the draws;
    `faults` makes the named providers fail in the ways and at the rates given (see `faults`).
    """
    market = ReplayMarket(outcomes, key, ReplayPrices.book(outcomes.providers, prices), seed)
    faults = dict(faults or {})
    unknown = sorted(set(faults) - set(outcomes.providers))
    if unknown:
        raise ServiceError(f"faults given for unknown provider {', '.join(unknown)}")
    app = FastAPI(title="modelarb replay market", docs_url=None, redoc_url=None, openapi_url=None)
    started = int(time.time())

    def model_card(provider: str) -> dict[str, Any]:
        return {"id": provider, "object": "model", "created": started, "owned_by": OWNER}

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card(provider) for provider in market.providers]}

    @app.get("/v1/models/{model}", response_model=None)
    async def retrieve_model(model: str) -> dict[str, Any] | JSONResponse:
        try:
            market.column_of(model)
        except ReplayRequestError as error:
            return error.response()
        return model_card(model)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        try:
            chat = _parse(await request.body())
            if chat.stream:
                raise ReplayRequestError(400, "streaming is not supported by the replay market", "stream")
            if chat.n not in (None, 1):
                raise ReplayRequestError(400, "the replay market answers one choice per call (n = 1)", "n")
            market.column_of(chat.model)
            instance, task, attempt = _task_and_attempt(chat.metadata)
            limit = chat.max_completion_tokens if chat.max_completion_tokens is not None else chat.max_tokens
            reply = market.reply(chat.model, instance, task, attempt, prompt_tokens_of(chat.messages), limit)
        except ReplayRequestError as error:
            return error.response()
        fault = faults[chat.model].draw() if chat.model in faults else None
        body = {
            "id": f"chatcmpl-replay-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": chat.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.content},
                    "finish_reason": reply.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": reply.prompt_tokens,
                "completion_tokens": reply.completion_tokens,
                "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            },
        }
        if fault is None:
            return JSONResponse(body)
        return await faulty_response(fault, faults[chat.model], body, limit)

    return app


def key_from_text(text: str) -> bytes:
    """The replay key written as text: hex digits decode to bytes, anything else is the text's UTF-8 bytes."""
    text = text.strip()
    if not text:
        raise ServiceError("the replay key is empty; write a key (hex or text) to the key file or MODELARB_REPLAY_KEY")
    try:
        return bytes.fromhex(text) if len(text) % 2 == 0 else text.encode()
    except ValueError:
        return text.encode()


def _toml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _toml_key(name: str) -> str:
    bare = name.replace("_", "").replace("-", "")
    return name if bare.isascii() and bare.isalnum() else _toml_string(name)


def _toml_number(value: Decimal) -> str:
    text = format(value, "f")
    return text if "." in text else f"{text}.0"


def replay_providers_toml(
    prices: ReplayPrices | Mapping[str, Price] | None,
    base_url: str,
    providers: Sequence[str],
    max_tokens: int,
    *,
    timeout_s: float = 30,
    concurrency: int = 64,
    api_key_env: str | None = None,
) -> str:
    """A broker providers file whose providers are this replay market's, at `base_url` (`http://host:port`)."""
    if not providers:
        raise ServiceError("a providers file needs at least one provider")
    if max_tokens < 1:
        raise ServiceError(f"max_tokens must be at least 1, got {max_tokens}")
    book = ReplayPrices.book(providers, prices)
    api = base_url.rstrip("/")
    api = api if api.endswith("/v1") else f"{api}/v1"
    blocks = []
    for provider in providers:
        input_price, output_price = book.of(provider)
        lines = [
            f"[providers.{_toml_key(provider)}]",
            f"base_url = {_toml_string(api)}",
            f"model = {_toml_string(provider)}",
        ]
        if api_key_env:
            lines.append(f"api_key_env = {_toml_string(api_key_env)}")
        lines += [
            f"input_price = {_toml_number(input_price)}",
            f"output_price = {_toml_number(output_price)}",
            f"max_tokens = {max_tokens}",
            f"timeout_s = {_toml_number(Decimal(str(timeout_s)))}",
            f"concurrency = {concurrency}",
            "send_metadata = true",
        ]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)
