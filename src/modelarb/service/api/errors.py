"""Every error the API returns: `{"error": {"type", "message"}}` with a 4xx status, never a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from modelarb.errors import ModelarbError
from modelarb.service.admission import Rejected

log = logging.getLogger("modelarb.api")
STATUS = {"invalid": 422, "not_found": 404, "conflict": 409, "payment": 402, "unauthorized": 401, "forbidden": 403}


def error_response(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)


def _validation_message(exc: RequestValidationError) -> tuple[int, str, str]:
    parts = []
    for error in exc.errors()[:5]:
        if error.get("type") == "json_invalid":
            return 400, "invalid_json", "the request body is not valid JSON"
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return 422, "invalid", "; ".join(parts)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into one JSON error."""

    @app.exception_handler(Rejected)
    async def _rejected(request: Request, exc: Rejected) -> JSONResponse:
        if exc.reason == "payment":
            request.app.state.broker.metrics.refusals.labels("customer_price_or_limit").inc()
        return error_response(STATUS.get(exc.reason, 400), exc.reason, str(exc))

    @app.exception_handler(ModelarbError)
    async def _modelarb(_request: Request, exc: ModelarbError) -> JSONResponse:
        return error_response(422, "invalid", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        status, kind, message = _validation_message(exc)
        return error_response(status, kind, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "error"
        )
        response = error_response(exc.status_code, kind, str(exc.detail))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return error_response(500, "internal", "the broker failed on this request; it is logged")
