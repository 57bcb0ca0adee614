"""Serving an ASGI app on loopback in a background thread: the live check's servers, and the tests'."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn

from modelarb.errors import ServiceError

STARTUP_TIMEOUT_S = 10.0


@dataclass
class Served:
    """An ASGI app served by uvicorn on a loopback port in a background thread."""

    url: str
    stop: Callable[[], None]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def serve_in_thread(app: Any, port: int = 0, **config: Any) -> Served:
    """Serve `app` on 127.0.0.1 (`port`, or a free one); returns once it accepts connections. `stop()` is idempotent."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP: asyncio sets TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    settings: dict[str, Any] = {"log_level": "warning", "access_log": False, "timeout_graceful_shutdown": 2}
    server = uvicorn.Server(uvicorn.Config(app, **{**settings, **config}))
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # reported to the caller waiting for the start
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"uvicorn-{port}", daemon=True)
    thread.start()

    def stop() -> None:
        server.should_exit = True
        thread.join(STARTUP_TIMEOUT_S)
        sock.close()

    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not (server.started and _answers(port)):
        if failure or not thread.is_alive() or time.monotonic() > deadline:
            stop()
            reason = failure[0] if failure else "it did not start in time"
            raise ServiceError(f"cannot serve on 127.0.0.1:{port}: {reason}")
        time.sleep(0.01)
    return Served(f"http://127.0.0.1:{port}", stop)
