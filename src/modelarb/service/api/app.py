"""The app factory: routers, error handlers, the body limit, and the broker's workers for the app's lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from modelarb import __version__
from modelarb.service.api import admin, errors, gateway, quotes, tasks
from modelarb.service.api.auth import admin as admin_key
from modelarb.service.api.limits import BodyLimit, NoNul
from modelarb.service.broker import Broker
from modelarb.service.keys import Principal


def create_app(broker: Broker, *, run_workers: bool = True) -> FastAPI:
    """The broker's HTTP API; with `run_workers`, its workers run while the app does."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if run_workers:
            broker.start()
        try:
            yield
        finally:
            broker.stop()

    app = FastAPI(
        title="modelarb broker",
        version=__version__,
        description="Buys attempts in a fitted cascade, verifies them, and sells verified solutions.",
        lifespan=lifespan,
    )
    app.state.broker = broker
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=broker.settings.max_body_bytes)
    app.add_middleware(NoNul)
    for module in (quotes, tasks, admin, gateway):
        app.include_router(module.router)

    @app.get("/healthz", tags=["health"])
    def healthz() -> JSONResponse:
        """Liveness: the plan served and whether the database answers (503 if not)."""
        try:
            with broker.store.reading() as session:
                session.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            return JSONResponse({"status": "unavailable", "database": str(exc.__class__.__name__)}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok", "plan_id": broker.terms.plan_id})

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    def metrics(_caller: Principal = Depends(admin_key)) -> PlainTextResponse:
        """Prometheus metrics (admin key): tasks by state, attempts and spend by provider, call latencies,
        retries, budget refusals, reservations outstanding."""
        return PlainTextResponse(broker.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return app
