"""Real servers for tests: any ASGI app served by uvicorn on 127.0.0.1 in a background thread."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from modelarb.service import loopback


def serve_in_thread(app: Any, port: int = 0, **config: Any) -> tuple[str, Callable[[], None]]:
    """Serve `app` on a free loopback port (or `port`); returns (base URL `http://127.0.0.1:PORT`, stop)."""
    served = loopback.serve_in_thread(app, port, **config)
    return served.url, served.stop


@contextmanager
def served(app: Any, **config: Any) -> Iterator[str]:
    """`with served(app) as base_url:` the app runs for the block's duration."""
    base_url, stop = serve_in_thread(app, **config)
    try:
        yield base_url
    finally:
        stop()
