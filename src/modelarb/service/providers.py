"""Calls to OpenAI-compatible providers: one HTTP request per call, priced, within a concurrency limit.

`ProviderClient.call` never retries and never raises for network or HTTP trouble: it returns a
`CallOutcome` saying what happened and whether a retry may help, because the caller reserves
money per request and decides about retries itself (`backoff_s` gives the delay).
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from modelarb.service.money import token_cost_micro
from modelarb.service.settings import ProviderConfig

MESSAGE_OVERHEAD_TOKENS = 8
REQUEST_OVERHEAD_TOKENS = 16
RETRY_AFTER_CAP_FACTOR = 4
ERROR_TEXT_LIMIT = 300
MAX_RESPONSE_BYTES = 4 * 1024 * 1024  # a larger reply is refused unread (booked at the call's worst case)


def prompt_token_bound(messages: list[dict[str, Any]]) -> int:
    """An upper bound on the prompt tokens of `messages`, without the model's tokenizer.

    Byte-level BPE tokenizers (and SentencePiece with byte fallback) cut UTF-8 text into tokens
    of at least one byte each, so a text never has more tokens than bytes. What the chat template
    adds around each message (role markers, separators) is covered by the per-message overhead,
    and the reply primer by the fixed overhead. A provider that injects a long hidden system
    prompt of its own can exceed the bound; the booked cost comes from its reported usage.
    """
    total = REQUEST_OVERHEAD_TOKENS
    for message in messages:
        total += MESSAGE_OVERHEAD_TOKENS
        for key, value in message.items():
            total += len(str(key).encode())
            total += _content_bytes(value)
    return total


def _content_bytes(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if value is None:
        return 0
    # structured content (parts, tool calls): its JSON text bounds the text it carries
    return len(json.dumps(value, ensure_ascii=False).encode())


@dataclass(frozen=True)
class CallOutcome:
    """What one request to a provider came to."""

    ok: bool
    text: str | None
    input_tokens: int | None
    output_tokens: int | None
    reported_cost_micro: int | None
    finish_reason: str | None
    status_code: int | None
    error: str | None
    retryable: bool
    retry_after_s: float | None
    latency_s: float
    usage_missing: bool

    @classmethod
    def failure(cls, error: str, latency_s: float, *, retryable: bool = True, billed: bool = False) -> CallOutcome:
        """A call that gave no usable reply; `billed`: the provider may have billed it (its usage is unknown)."""
        return cls(
            ok=False,
            text=None,
            input_tokens=None,
            output_tokens=None,
            reported_cost_micro=None,
            finish_reason=None,
            status_code=None,
            error=error,
            retryable=retryable,
            retry_after_s=None,
            latency_s=latency_s,
            usage_missing=billed,
        )


class ProviderClient:
    """One provider: prices its calls and sends them, at most `config.concurrency` at a time."""

    def __init__(self, config: ProviderConfig, http: httpx.Client | None = None) -> None:
        self.config = config
        self._input_price, self._output_price = config.prices
        self._api_key = config.api_key()
        self._slots = threading.BoundedSemaphore(config.concurrency)
        self._timeout = httpx.Timeout(config.timeout_s)
        self._owns_http = http is None
        self._http = http or httpx.Client(
            timeout=self._timeout,
            limits=httpx.Limits(max_connections=config.concurrency, max_keepalive_connections=config.concurrency),
        )
        self._url = f"{config.base_url}/chat/completions"

    def __repr__(self) -> str:
        return f"ProviderClient({self.config.name!r}, model={self.config.model!r}, url={self._url!r})"

    # -- money --------------------------------------------------------------------------------

    def cost_micro(self, input_tokens: int, output_tokens: int) -> int:
        """What the provider bills for these tokens, in micro-units (rounded up)."""
        return token_cost_micro(input_tokens, output_tokens, self._input_price, self._output_price)

    def worst_case_micro(self, prompt_tokens: int, max_tokens: int) -> int:
        """The most a request can cost: the whole prompt plus `max_tokens` of completion."""
        return self.cost_micro(prompt_tokens, max_tokens)

    def max_tokens_within(self, budget_micro: int, prompt_tokens: int) -> int:
        """The largest max_tokens (at most config.max_tokens) whose worst case fits the budget; 0 if none."""
        cap = self.config.max_tokens
        left = Decimal(budget_micro) - Decimal(prompt_tokens) * self._input_price
        if left < 0:
            return 0
        if self._output_price == 0:
            return cap
        # ceil(cost) <= budget exactly when cost <= budget (budget is whole), so floor the quotient
        guess = int((left / self._output_price).to_integral_value(rounding=ROUND_FLOOR))
        tokens = min(max(guess, 0), cap)
        # the Decimal quotient is rounded to 28 digits: nudge to the exact answer
        while tokens > 0 and self.worst_case_micro(prompt_tokens, tokens) > budget_micro:
            tokens -= 1
        while tokens < cap and self.worst_case_micro(prompt_tokens, tokens + 1) <= budget_micro:
            tokens += 1
        return tokens

    # -- requests -----------------------------------------------------------------------------

    def call(
        self,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int,
        call_id: str,
        metadata: dict[str, str] | None = None,
    ) -> CallOutcome:
        """Send one chat-completions request (no retries) and say what came of it; never raises for I/O.

        `metadata` goes with the request only when the provider's config says `send_metadata`.
        """
        body, headers = self._request(messages, max_tokens, call_id, metadata)
        with self._slots:
            started = time.monotonic()
            try:
                with self._http.stream("POST", self._url, json=body, headers=headers, timeout=self._timeout) as reply:
                    content = bytearray()
                    for piece in reply.iter_bytes():
                        content += piece
                        if len(content) > MAX_RESPONSE_BYTES:
                            error = f"the reply is larger than {MAX_RESPONSE_BYTES} bytes; not read further"
                            return _failure(error, started, retryable=False, billed=True)
                response = httpx.Response(reply.status_code, headers=reply.headers, content=bytes(content))
            except httpx.TimeoutException as exc:
                error = f"timed out after {self.config.timeout_s:g} s ({type(exc).__name__})"
                return _failure(error, started, billed=_sent(exc))
            except httpx.TransportError as exc:
                error = f"connection failed: {_short(str(exc) or type(exc).__name__)}"
                return _failure(error, started, billed=_sent(exc))
            except httpx.HTTPError as exc:
                return _failure(f"request failed: {_short(str(exc) or type(exc).__name__)}", started, retryable=False)
            latency = time.monotonic() - started
        return self._read(response, latency)

    def stream(
        self,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int,
        call_id: str,
        metadata: dict[str, str] | None = None,
    ) -> StreamedCall:
        """One streaming request (usage asked for in the last chunk): iterate the result for content deltas."""
        body, headers = self._request(messages, max_tokens, call_id, metadata)
        body.update(stream=True, stream_options={"include_usage": True})
        return StreamedCall(self, body, headers)

    def _request(
        self, messages: list[dict[str, Any]], max_tokens: int, call_id: str, metadata: dict[str, str] | None
    ) -> tuple[dict[str, Any], dict[str, str]]:
        body: dict[str, Any] = {"model": self.config.model, "messages": messages}
        body[self.config.max_tokens_field] = max_tokens
        if metadata and self.config.send_metadata:
            body["metadata"] = metadata
        headers = {"Idempotency-Key": call_id, "X-Request-Id": call_id}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return body, headers

    def backoff_s(self, retry_number: int, retry_after_s: float | None, rng: random.Random) -> float:
        """Delay before the next retry, `retry_number` retries having been made (0 before the first).

        Full-jitter exponential: uniform in [0, min(max_backoff_s, backoff_s × 2^retry_number)], and at least
        Retry-After when the provider sent one (itself capped at 4 × max_backoff_s).
        """
        if retry_number < 0:
            raise ValueError(f"retry_number counts retries made so far (0, 1, ...), got {retry_number}")
        cap = self.config.max_backoff_s
        ceiling = min(cap, self.config.backoff_s * 2.0 ** min(retry_number, 60))
        delay = rng.uniform(0.0, ceiling)
        if retry_after_s is not None and retry_after_s > 0:
            delay = max(delay, min(retry_after_s, cap * RETRY_AFTER_CAP_FACTOR))
        return delay

    def close(self) -> None:
        """Close the HTTP client if this object made it (a shared client is the caller's to close)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> ProviderClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- reading replies ----------------------------------------------------------------------

    def _read(self, response: httpx.Response, latency: float) -> CallOutcome:
        status = response.status_code
        try:
            payload: Any = response.json()
        except ValueError:
            payload = None
        usage = self._usage(payload)
        input_tokens, output_tokens = usage if usage else (None, None)
        cost = self.cost_micro(*usage) if usage else None
        common: dict[str, Any] = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "reported_cost_micro": cost,
            "status_code": status,
            "latency_s": latency,
        }
        if not 200 <= status < 300:
            retryable = status in (408, 409, 429) or status >= 500
            return CallOutcome(
                ok=False,
                text=None,
                finish_reason=None,
                error=f"HTTP {status}: {_error_text(payload, response)}",
                retryable=retryable,
                retry_after_s=_retry_after(response.headers) if retryable else None,
                usage_missing=False,
                **common,
            )
        choice = _first_choice(payload)
        if choice is None:
            problem = "malformed JSON" if payload is None else "no choices"
            return CallOutcome(
                ok=False,
                text=None,
                finish_reason=None,
                error=f"HTTP {status} reply with {problem}: {_short(response.text)}",
                retryable=True,
                retry_after_s=None,
                usage_missing=usage is None,
                **common,
            )
        message = choice["message"]
        finish_reason = choice.get("finish_reason")
        return CallOutcome(
            ok=True,
            text=_message_text(message.get("content")),
            finish_reason=finish_reason if isinstance(finish_reason, str) else None,
            error=None,
            retryable=False,
            retry_after_s=None,
            usage_missing=usage is None,
            **common,
        )

    @staticmethod
    def _usage(payload: Any) -> tuple[int, int] | None:
        if not isinstance(payload, dict) or not isinstance(payload.get("usage"), dict):
            return None
        usage = payload["usage"]
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if not (_count(prompt) and _count(completion)):
            return None
        return prompt, completion


class StreamedCall:
    """A streaming call: iterating it yields the reply's content deltas as they arrive.

    `outcome` is set once iteration ends, as for `call`: usage from the last chunk (or
    `usage_missing`), and when the consumer stops early, a failed outcome whose usage is missing
    (the provider may bill the whole generation, so the caller books the worst case).
    """

    def __init__(self, client: ProviderClient, body: dict[str, Any], headers: dict[str, str]) -> None:
        self.client, self.body, self.headers = client, body, headers
        self.outcome: CallOutcome | None = None

    def __iter__(self) -> Iterator[str]:
        client = self.client
        parts: list[str] = []
        usage: tuple[int, int] | None = None
        finish: str | None = None
        with client._slots:
            started = time.monotonic()
            try:
                with client._http.stream(
                    "POST", client._url, json=self.body, headers=self.headers, timeout=client._timeout
                ) as response:
                    if not 200 <= response.status_code < 300:
                        response.read()
                        self.outcome = client._read(response, time.monotonic() - started)
                        return
                    for line in response.iter_lines():
                        if not line.startswith("data:"):
                            continue
                        data = line[len("data:") :].strip()
                        if data == "[DONE]":
                            break
                        try:
                            chunk = json.loads(data)
                        except ValueError:
                            self.outcome = _failure(f"malformed stream chunk: {_short(data)}", started, billed=True)
                            return
                        usage = client._usage(chunk) or usage
                        choices = chunk.get("choices") if isinstance(chunk, dict) else None
                        for choice in choices if isinstance(choices, list) else []:
                            if not isinstance(choice, dict):
                                continue
                            delta = choice.get("delta")
                            content = delta.get("content") if isinstance(delta, dict) else None
                            if isinstance(content, str) and content:
                                parts.append(content)
                                yield content
                            if isinstance(choice.get("finish_reason"), str):
                                finish = choice["finish_reason"]
            except httpx.TimeoutException as exc:
                error = f"timed out after {client.config.timeout_s:g} s ({type(exc).__name__})"
                self.outcome = _failure(error, started, billed=_sent(exc))
                return
            except httpx.TransportError as exc:
                error = f"connection failed: {_short(str(exc) or type(exc).__name__)}"
                self.outcome = _failure(error, started, billed=_sent(exc))
                return
            except GeneratorExit:
                self.outcome = _failure("the stream was abandoned by its consumer", started, billed=True)
                raise
            self.outcome = CallOutcome(
                ok=True,
                text="".join(parts),
                input_tokens=usage[0] if usage else None,
                output_tokens=usage[1] if usage else None,
                reported_cost_micro=client.cost_micro(*usage) if usage else None,
                finish_reason=finish,
                status_code=response.status_code,
                error=None,
                retryable=False,
                retry_after_s=None,
                latency_s=time.monotonic() - started,
                usage_missing=usage is None,
            )


def _sent(exc: httpx.HTTPError) -> bool:
    """Whether the request may have reached the provider (so it may bill it): all but failures to connect."""
    return not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _first_choice(payload: Any) -> dict[str, Any] | None:
    if not isinstance(payload, dict):
        return None
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    choice: dict[str, Any] = choices[0]
    return choice if isinstance(choice.get("message"), dict) else None


def _message_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        texts = [part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)]
        return "".join(texts) if texts else None
    return None


def _failure(error: str, started: float, *, retryable: bool = True, billed: bool = False) -> CallOutcome:
    return CallOutcome.failure(error, time.monotonic() - started, retryable=retryable, billed=billed)


def _error_text(payload: Any, response: httpx.Response) -> str:
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return _short(error["message"])
        if isinstance(error, str):
            return _short(error)
    return _short(response.text) or response.reason_phrase


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ERROR_TEXT_LIMIT else text[: ERROR_TEXT_LIMIT - 1] + "…"


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or an HTTP date); None if absent or bad."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000.0
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
        return max(seconds, 0.0)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
