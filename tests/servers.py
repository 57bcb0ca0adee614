"""Real servers for tests: any ASGI app served by uvicorn on 127.0.0.1 in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

STARTUP_TIMEOUT_S = 10.0


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def serve_in_thread(app: Any, port: int = 0, **config: Any) -> tuple[str, Callable[[], None]]:
    """Serve `app` on a free loopback port (or `port`); returns (base URL `http://127.0.0.1:PORT`, stop).

    Returns once the server has started and the port accepts connections. `stop()` shuts the
    server down and waits for its thread; calling it again does nothing. Extra keyword
    arguments go to `uvicorn.Config`.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP: asyncio sets TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    settings: dict[str, Any] = {"log_level": "warning", "access_log": False, "timeout_graceful_shutdown": 2}
    settings.update(config)
    server = uvicorn.Server(uvicorn.Config(app, **settings))
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # reported by the waiting caller
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not (server.started and _answers(port)):
        if failure or not thread.is_alive():
            sock.close()
            raise RuntimeError(f"the test server did not start: {failure[0] if failure else 'thread ended'}")
        if time.monotonic() > deadline:
            server.should_exit = True
            thread.join(STARTUP_TIMEOUT_S)
            sock.close()
            raise RuntimeError(f"the test server did not start within {STARTUP_TIMEOUT_S} s")
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(STARTUP_TIMEOUT_S)
        sock.close()
        if thread.is_alive():
            raise RuntimeError(f"the test server on port {port} did not stop within {STARTUP_TIMEOUT_S} s")

    return f"http://127.0.0.1:{port}", stop


@contextmanager
def served(app: Any, **config: Any) -> Iterator[str]:
    """`with served(app) as base_url:` the app runs for the block's duration."""
    base_url, stop = serve_in_thread(app, **config)
    try:
        yield base_url
    finally:
        stop()
