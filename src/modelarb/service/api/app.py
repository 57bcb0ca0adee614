"""The app factory: routers, error handlers, the body limit, and the broker's workers for the app's lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from modelarb import __version__
from modelarb.service.api import admin, errors, quotes, tasks
from modelarb.service.api.limits import BodyLimit
from modelarb.service.broker import Broker


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
    for module in (quotes, tasks, admin):
        app.include_router(module.router)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok", "plan_id": broker.terms.plan_id}

    return app
