"""Fault injection for the replay market: each provider fails in chosen ways at chosen rates.

A `Faults` spec gives, per kind, the probability that a call meets it; one seeded draw per
call picks at most one kind. Kinds:

- `500`: an HTTP 500 error; `429`: an HTTP 429 with `Retry-After`; `429-bare`: a 429 without it;
- `timeout`: the reply comes after `hang_s` (longer than the broker's timeout should be);
- `drop`: the connection is closed half-way through the response body;
- `malformed`: a 200 whose body is not JSON;
- `usage-missing`, `usage-zero`: a good reply whose `usage` is absent, or zero tokens;
- `usage-lie`: a good reply whose `usage` bills far more completion tokens than `max_tokens` allows;
- `slow`: a good reply after `slow_s`.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse, Response, StreamingResponse

from modelarb.errors import ServiceError

KINDS = ("500", "429", "429-bare", "timeout", "drop", "malformed", "usage-missing", "usage-zero", "usage-lie", "slow")


@dataclass
class Faults:
    """Per-kind probabilities (summing to at most 1), their delays, and the seeded generator that draws them."""

    rates: dict[str, float]
    seed: int = 0
    hang_s: float = 5.0
    slow_s: float = 0.5
    retry_after_s: float = 0.05
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.rates) - set(KINDS))
        if unknown:
            raise ServiceError(f"unknown fault kind {', '.join(unknown)}: use {', '.join(KINDS)}")
        if any(not 0 <= rate <= 1 for rate in self.rates.values()) or sum(self.rates.values()) > 1:
            raise ServiceError("fault rates must lie in [0, 1] and add up to at most 1")
        self._rng = random.Random(self.seed)

    @classmethod
    def parse(cls, text: str, seed: int = 0) -> Faults:
        """`500=0.05,429=0.05,timeout=0.01` (kind=rate, comma-separated)."""
        rates = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            kind, sep, rate = item.partition("=")
            try:
                rates[kind.strip()] = float(rate)
            except ValueError:
                sep = ""
            if not sep:
                raise ServiceError(f"a fault is KIND=RATE such as 500=0.05, got {item!r}")
        return cls(rates, seed)

    def draw(self) -> str | None:
        """The fault this call meets, or None."""
        with self._lock:
            u = self._rng.random()
        for kind in KINDS:
            u -= self.rates.get(kind, 0.0)
            if u < 0:
                return kind
        return None


async def faulty_response(kind: str, faults: Faults, body: dict[str, Any], max_tokens: int | None) -> Response:
    """The response a call meeting fault `kind` gets, `body` being the good reply it would have had."""
    if kind == "500":
        return _error(500, "replay fault: the provider failed", "server_error")
    if kind in ("429", "429-bare"):
        headers = {"retry-after-ms": str(round(faults.retry_after_s * 1000))} if kind == "429" else {}
        return _error(429, "replay fault: rate limited", "rate_limit_exceeded", headers)
    if kind == "malformed":
        return Response(b'{"id": "chatcmpl-replay", "choices": [', media_type="application/json")
    if kind == "drop":
        payload = json.dumps(body).encode()

        async def half_then_hang_up() -> AsyncIterator[bytes]:
            yield payload[: len(payload) // 2]
            raise ConnectionAbortedError("replay fault: connection dropped mid-response")

        return StreamingResponse(
            half_then_hang_up(), media_type="application/json", headers={"content-length": str(len(payload))}
        )
    if kind in ("timeout", "slow"):
        await asyncio.sleep(faults.hang_s if kind == "timeout" else faults.slow_s)
    elif kind == "usage-missing":
        body = {name: value for name, value in body.items() if name != "usage"}
    elif kind == "usage-zero":
        body = {**body, "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}
    elif kind == "usage-lie":
        usage = dict(body["usage"])
        usage["completion_tokens"] = 10 * (max_tokens or usage["completion_tokens"]) + 10_000
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        body = {**body, "usage": usage}
    return JSONResponse(body)


def _error(status: int, message: str, code: str, headers: dict[str, str] | None = None) -> JSONResponse:
    error = {"message": message, "type": code, "param": None, "code": code}
    return JSONResponse({"error": error}, status_code=status, headers=headers)
