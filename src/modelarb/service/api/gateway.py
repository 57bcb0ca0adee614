"""`/gateway/v1`: the OpenAI-compatible endpoint agent harnesses call during an attempt (see `service.gateway`)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from modelarb.service.gateway import Grant, Refusal, begin_call, finish_call, token_provider
from modelarb.service.providers import CallOutcome

router = APIRouter(prefix="/gateway/v1", tags=["gateway"])


def _token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": code, "param": None, "code": code}}, status_code=status)


@router.get("/models")
def models(request: Request) -> Response:
    """The one model an attempt may call (its provider), whatever name the harness uses."""
    provider = token_provider(request.app.state.broker.store, _token(request))
    if provider is None:
        return _error(401, "invalid_token", "missing, unknown or expired attempt token")
    card = {"id": provider, "object": "model", "created": 0, "owned_by": "modelarb-gateway"}
    return JSONResponse({"object": "list", "data": [card]})


@router.post("/chat/completions")
async def complete(request: Request) -> Response:
    """Forward one chat completion to the attempt's provider, metered; `stream: true` answers as server-sent events."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        return _error(400, "invalid_request", "the request body is not valid JSON")
    if not isinstance(body, dict):
        return _error(400, "invalid_request", "the request body must be a JSON object")
    broker = request.app.state.broker
    try:
        grant = await run_in_threadpool(begin_call, broker.store, broker.clients, _token(request), body)
    except Refusal as refusal:
        return _error(refusal.status, refusal.code, refusal.message)
    model: str = body["model"] if isinstance(body.get("model"), str) else grant.provider
    client = broker.clients[grant.provider]
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(_stream(broker, grant, model, include_usage), media_type="text/event-stream")
    outcome = await run_in_threadpool(
        client.call, grant.messages, max_tokens=grant.max_tokens, call_id=grant.call_id, metadata=grant.metadata
    )
    await run_in_threadpool(finish_call, broker.store, grant, outcome)
    if not outcome.ok:
        return _error(502, "provider_error", f"the provider failed: {outcome.error}")
    return JSONResponse(_completion(grant, model, outcome))


def _completion(grant: Grant, model: str, outcome: CallOutcome) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{grant.call_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": outcome.text or ""},
                "finish_reason": outcome.finish_reason or "stop",
            }
        ],
        "usage": _usage(outcome),
    }


def _usage(outcome: CallOutcome) -> dict[str, int]:
    prompt, completion = outcome.input_tokens or 0, outcome.output_tokens or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _stream(broker: Any, grant: Grant, model: str, include_usage: bool) -> Iterator[bytes]:
    """Relay the provider's stream as OpenAI chunks; book the call however the stream ends."""
    streamed = broker.clients[grant.provider].stream(
        grant.messages, max_tokens=grant.max_tokens, call_id=grant.call_id, metadata=grant.metadata
    )
    chunk_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        chunk = {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": choices,
            **extra,
        }
        return f"data: {json.dumps(chunk)}\n\n".encode()

    booked = False
    try:
        yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        for delta in streamed:
            yield event([{"index": 0, "delta": {"content": delta}, "finish_reason": None}])
        outcome = streamed.outcome
        assert outcome is not None
        finish_call(broker.store, grant, outcome)
        booked = True
        if not outcome.ok:
            error = {
                "message": f"the provider failed: {outcome.error}",
                "type": "provider_error",
                "code": "provider_error",
            }
            yield f"data: {json.dumps({'error': error})}\n\n".encode()
            return
        yield event([{"index": 0, "delta": {}, "finish_reason": outcome.finish_reason or "stop"}])
        if include_usage:
            yield event([], usage=_usage(outcome))
        yield b"data: [DONE]\n\n"
    finally:
        if not booked:
            finish_call(broker.store, grant, streamed.outcome or _abandoned())


def _abandoned() -> CallOutcome:
    return CallOutcome.failure("the harness went away before the stream began", 0.0, retryable=False, billed=True)
