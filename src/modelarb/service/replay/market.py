"""The replay market: each provider's recorded attempts served as an OpenAI-compatible chat-completions API.

A call names the provider as `model` and the recorded instance in `metadata.instance`; it is answered
with one recorded attempt of that cell, drawn without replacement within the broker's task
(`metadata.task`, `metadata.attempt`) by a seeded permutation, so the market keeps no state. The reply
ends with a signed outcome line (see `signing`) and bills, in `usage`, tokens that cost the cell's
recorded mean cost per attempt at the market's prices.

A market with `turns` > 1 serves agent harnesses: a call carrying `metadata.turn` gets one turn of a
conversation of `turns` calls that together bill the recorded cost; only the last turn carries the
outcome. A call with `stream: true` gets the same reply as OpenAI's server-sent chunks.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
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


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool | None = None


class ChatRequest(BaseModel):
    """The fields of an OpenAI chat-completions request the replay market reads; others are ignored."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    metadata: dict[str, str | int] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
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
    """One call of a replayed attempt: what the chat-completions response reports.

    `outcome` is None on the turns of a multi-turn attempt before the last.
    """

    content: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    outcome: Outcome | None


class ReplayMarket:
    """Lookups over one market's recorded attempts: which attempt a call gets, what it bills, its signed outcome."""

    def __init__(self, outcomes: Outcomes, key: bytes, prices: ReplayPrices, seed: int, turns: int = 1) -> None:
        if not key:
            raise ServiceError("the replay key is empty; give the key the broker's replay verifier uses")
        if turns < 1:
            raise ServiceError(f"turns must be at least 1 (calls per recorded attempt), got {turns}")
        self.turns = turns
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

    def share_of_cost(self, cost_micro: Decimal, turn: int | None) -> tuple[Decimal, bool]:
        """(what call `turn` bills of an attempt recorded at `cost_micro`, whether it is a final turn).

        Turns before the last bill `cost_micro / turns` each, the last turn the rest, so the `turns`
        calls together bill `cost_micro`; a turn past the last bills one more share. Without a turn,
        or with one turn per attempt, the call is the whole attempt.
        """
        if turn is None or self.turns == 1:
            return cost_micro, True
        share = cost_micro / self.turns
        if turn == self.turns - 1:
            return cost_micro - share * (self.turns - 1), True
        return share, turn >= self.turns

    def reply(
        self,
        provider: str,
        instance: str,
        task: str,
        attempt: int,
        prompt_tokens: int,
        max_tokens: int | None,
        turn: int | None = None,
    ) -> Reply:
        """Call `turn` (None: the only call) of the `attempt`-th attempt (0-based) of `provider` on `instance`.

        A final turn ends with the signed outcome; a reply cut at `max_tokens` bills `max_tokens`
        completion tokens, and a final one cut short is unsolved.
        """
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
        cost_micro, final = self.share_of_cost(self.cost_micro[row][column], turn)
        prompt, completion = tokens_for_cost(cost_micro, prompt_tokens, input_price, output_price)
        finish_reason = "stop"
        if max_tokens is not None and completion > max_tokens:
            completion, solved, finish_reason = max_tokens, False, "length"
        if not final and turn is not None:
            content = f"Replay turn {turn + 1} of {self.turns} by {provider} on {instance}: keep going."
            return Reply(content, finish_reason, prompt, completion, None)
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


def _count(metadata: Mapping[str, str | int], name: str, what: str) -> int | None:
    value = metadata.get(name)
    if value is None:
        return None
    text = str(value)
    if not (text.isascii() and text.isdigit()):
        raise ReplayRequestError(400, f"metadata.{name} {text!r} must be {what}: 0, 1, 2, ...", "metadata")
    return int(text)


def _call_of(metadata: Mapping[str, str | int] | None, turns: int) -> tuple[str, str, int, int | None]:
    """(instance, task, attempt, turn) of a call; the turn is read only by a multi-turn market."""
    metadata = metadata or {}
    instance = metadata.get("instance")
    if instance is None or instance == "":
        raise ReplayRequestError(
            400, "metadata.instance is required: the id of the recorded instance this call attempts", "metadata"
        )
    attempt = _count(metadata, "attempt", "this provider's attempt number") or 0
    turn = _count(metadata, "turn", "the number of this call within its attempt") if turns > 1 else None
    return str(instance), str(metadata.get("task", "")), attempt, turn


def _usage(reply: Reply) -> dict[str, int]:
    total = reply.prompt_tokens + reply.completion_tokens
    return {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens, "total_tokens": total}


def _completion(completion_id: str, created: int, model: str, reply: Reply) -> dict[str, Any]:
    message = {"role": "assistant", "content": reply.content}
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason, "logprobs": None}],
        "usage": _usage(reply),
    }


STREAM_PIECES = 4


def _content_pieces(content: str) -> list[str]:
    """The content cut into at most `STREAM_PIECES` consecutive pieces, as the content deltas stream it."""
    size = max(1, math.ceil(len(content) / STREAM_PIECES))
    return [content[start : start + size] for start in range(0, len(content), size)]


def _sse(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


SSE_DONE = b"data: [DONE]\n\n"


def _stream_events(
    completion_id: str, created: int, model: str, reply: Reply, usage_chunk: bool, usage: dict[str, int] | None
) -> list[bytes]:
    """The server-sent events of a streamed reply, as OpenAI sends them.

    A role chunk, the content in a few chunks, a chunk with the finish reason and, when `usage_chunk`,
    a last chunk without choices carrying `usage` (left out when `usage` is None); then `[DONE]`.
    Every chunk carries `usage: null` when a usage chunk is asked for.
    """
    head: dict[str, Any] = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}

    def chunk(delta: dict[str, str], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return _sse({**head, "choices": [choice], **({"usage": None} if usage_chunk else {})})

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": piece}) for piece in _content_pieces(reply.content)]
    events.append(chunk({}, reply.finish_reason))
    if usage_chunk and usage is not None:
        events.append(_sse({**head, "choices": [], "usage": usage}))
    events.append(SSE_DONE)
    return events


async def _streamed(
    chat: ChatRequest, reply: Reply, fault: str | None, faults: Faults | None, limit: int | None
) -> Response:
    """The streamed response to `chat`: `reply` as server-sent chunks, or the fault it meets.

    Errors (`500`, `429`, `429-bare`) come before any chunk; `timeout` and `slow` delay the first
    chunk; `malformed` sends one chunk that is not JSON; `drop` hangs up after the first chunks; the
    `usage-*` faults change (or, for `usage-missing`, leave out) the usage chunk.
    """
    completion_id, created = f"chatcmpl-replay-{uuid.uuid4().hex}", int(time.time())
    usage: dict[str, int] | None = _usage(reply)
    if fault is not None and faults is not None:
        if fault in ("500", "429", "429-bare"):
            return await faulty_response(fault, faults, {}, limit)
        if fault == "malformed":
            return Response(b'data: {"id": "chatcmpl-replay", "choices": [\n\n', media_type="text/event-stream")
        if fault in ("timeout", "slow"):
            await asyncio.sleep(faults.hang_s if fault == "timeout" else faults.slow_s)
        elif fault.startswith("usage-"):  # the usage the fault reports, as `faulty_response` writes it
            usage = json.loads(bytes((await faulty_response(fault, faults, {"usage": usage}, limit)).body)).get("usage")
    include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
    events = _stream_events(completion_id, created, chat.model, reply, include_usage, usage)
    if fault == "drop":
        sent = events[: len(events) // 2]

        async def some_then_hang_up() -> AsyncIterator[bytes]:
            for event in sent:
                yield event
            raise ConnectionAbortedError("replay fault: connection dropped mid-stream")

        return StreamingResponse(some_then_hang_up(), media_type="text/event-stream")

    # all events in one body: what a client reads is the same as from a slow stream, and the market stays fast
    return Response(b"".join(events), media_type="text/event-stream", headers={"cache-control": "no-cache"})


def create_replay_app(
    outcomes: Outcomes,
    key: bytes,
    prices: ReplayPrices | Mapping[str, Price] | None = None,
    *,
    seed: int = 0,
    faults: Mapping[str, Faults] | None = None,
    turns: int = 1,
) -> FastAPI:
    """An OpenAI-compatible app serving `outcomes`' providers as models (`/v1/models`, `/v1/chat/completions`).

    `key` signs the outcome lines (the broker's replay verifier holds the same key); `prices` are per
    million input and output tokens in the data's cost unit (default 1 and 1); `seed` fixes the draws;
    `faults` makes the named providers fail in the ways and at the rates given (see `faults`).

    With `turns` > 1, a call whose `metadata.turn` is t (0, 1, ...) is turn t of the recorded attempt
    (drawn by task and attempt as ever) served as a conversation of `turns` calls: a turn before the
    last replies "Replay turn t+1 of N by PROVIDER on INSTANCE: keep going." and bills `cost / turns`;
    the last (t = turns - 1) replies with the signed outcome and bills the rest; a turn past the last
    bills one more share and replies with the final content again. Each call bills its share to within
    half a token's price (the output price; the input price when the prompt alone costs more than the
    share), so the `turns` calls of an attempt together bill its recorded cost to within
    `turns` x max(input price, output price) / 2. `max_tokens` cuts each call on its own: a cut
    turn bills `max_tokens` completion tokens, and a cut final turn is unsolved. Without
    `metadata.turn`, or with `turns` = 1, a call is the whole attempt.

    `stream: true` answers the same reply, bill and outcome as server-sent `chat.completion.chunk`s
    (with a usage chunk when `stream_options.include_usage`).
    """
    market = ReplayMarket(outcomes, key, ReplayPrices.book(outcomes.providers, prices), seed, turns)
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
            if chat.n not in (None, 1):
                raise ReplayRequestError(400, "the replay market answers one choice per call (n = 1)", "n")
            market.column_of(chat.model)
            instance, task, attempt, turn = _call_of(chat.metadata, market.turns)
            limit = chat.max_completion_tokens if chat.max_completion_tokens is not None else chat.max_tokens
            reply = market.reply(chat.model, instance, task, attempt, prompt_tokens_of(chat.messages), limit, turn)
        except ReplayRequestError as error:
            return error.response()
        fault = faults[chat.model].draw() if chat.model in faults else None
        if chat.stream:
            return await _streamed(chat, reply, fault, faults.get(chat.model), limit)
        body = _completion(f"chatcmpl-replay-{uuid.uuid4().hex}", int(time.time()), chat.model, reply)
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
