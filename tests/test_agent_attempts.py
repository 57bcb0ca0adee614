"""Agent attempts: a harness script calls the broker's metering gateway with the openai client; every call is booked."""

from __future__ import annotations

import http.server
import itertools
import json
import queue
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from broker_setup import REPLAY_KEY, Running, providers_file, replay_task, synthetic_market, synthetic_plan, wait_final
from modelarb.service import reports
from modelarb.service.api.app import create_app
from modelarb.service.broker import Broker, BrokerSettings
from modelarb.service.replay.market import create_replay_app
from modelarb.service.settings import load_providers
from modelarb.service.states import FINAL, SOLVED
from modelarb.service.store.engine import Store
from modelarb.service.store.tables import Attempt, Call
from servers import serve_in_thread

HARNESSES = Path(__file__).parent / "harnesses"
TURNS = 3  # the replay market serves each recorded attempt as a conversation of three calls


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def agent_broker(db_url: str, folder: Path, harness: list[str], **settings: Any) -> Iterator[Running]:
    """Replay market + a broker whose providers make agent attempts with `harness`, on loopback."""
    outcomes = synthetic_market()
    plan = synthetic_plan(outcomes)
    replay_url, stop_replay = serve_in_thread(create_replay_app(outcomes, REPLAY_KEY, turns=TURNS))
    port = _free_port()
    options: dict[str, Any] = {
        "workers": 4,
        "replay_key": REPLAY_KEY,
        "poll_s": 0.05,
        "agent_command": [sys.executable, *harness],
        "agent_readonly_paths": [str(HARNESSES)],
        "gateway_url": f"http://127.0.0.1:{port}/gateway/v1",
        "agent_timeout_s": 60,
        **settings,
    }
    store = Store.open(db_url)
    providers = load_providers(providers_file(folder, replay_url, extra='attempt = "agent"'))
    broker = Broker(store, plan, providers, BrokerSettings(**options))
    url, stop_broker = serve_in_thread(create_app(broker), port=port)
    try:
        yield Running(url, replay_url, broker, store, plan, outcomes)
    finally:
        stop_broker()
        stop_replay()
        store.close()


def _calls_by_attempt(store: Store) -> dict[int, list[Call]]:
    calls: dict[int, list[Call]] = {}
    with store.reading() as session:
        for call in session.execute(select(Call)).scalars():
            calls.setdefault(call.attempt_id, []).append(call)
    return calls


def test_a_harness_with_the_openai_client_solves_tasks_through_the_gateway(store_url: str, tmp_path: Path) -> None:
    with agent_broker(store_url, tmp_path, [str(HARNESSES / "solve.py")]) as live, live.customer("ada") as ada:
        ids = [ada.post("/v1/tasks", json=replay_task(str(i))).json()["id"] for i in live.outcomes.instances[:6]]
        done = wait_final(ada, ids, timeout_s=120)
        calls = _calls_by_attempt(live.store)
    assert {t["state"] for t in done.values()} <= {"solved", "unsolved"} and any(
        t["state"] == SOLVED for t in done.values()
    )
    for task in done.values():
        for attempt in task["attempts"]:
            metered = calls.get(_attempt_id(live, task["id"], attempt["stage"], attempt["number"]), [])
            assert attempt["cost_micro"] == sum(c.cost_micro or 0 for c in metered)
            if attempt["state"] == "verified":
                assert len(metered) == TURNS  # the harness talked until the outcome came
    assert reports.check(live.store) == []


def _attempt_id(live: Running, task_id: str, stage: int, number: int) -> int:
    with live.store.reading() as session:
        return int(
            session.execute(
                select(Attempt.id).where(Attempt.task_id == task_id, Attempt.stage == stage, Attempt.number == number)
            ).scalar_one()
        )


@pytest.mark.parametrize("stream", [False, True])
def test_a_harness_that_keeps_calling_is_stopped_at_its_cap(tmp_path: Path, stream: bool) -> None:
    harness = [str(HARNESSES / "keep_calling.py"), *(["--stream"] if stream else [])]
    tasks = 30 if stream else 100  # a harness that keeps calling spends a stage's whole cap in one attempt
    with agent_broker(
        f"sqlite:///{tmp_path / 'a.sqlite3'}", tmp_path, harness, workers=8, agent_max_steps=10_000
    ) as live:
        with live.customer("bea") as bea:
            instances = [str(live.outcomes.instances[k % live.outcomes.n_instances]) for k in range(tasks)]
            ids = [bea.post("/v1/tasks", json=replay_task(i)).json()["id"] for i in instances]
            done = wait_final(bea, ids, timeout_s=300)
        calls = _calls_by_attempt(live.store)
    assert all(t["state"] in FINAL for t in done.values())
    attempts = [a for t in done.values() for a in t["attempts"]]
    assert len(attempts) >= tasks and all(a["state"] in ("verified", "rejected") for a in attempts)
    for task in done.values():
        for stage, cap in enumerate(task["cascade"]["caps"]):
            spent = sum(a["cost_micro"] for a in task["attempts"] if a["stage"] == stage)
            assert spent <= round(cap * 1e6)
    assert sum(len(c) for c in calls.values()) > len(attempts)  # the harnesses called again and again
    assert reports.check(live.store) == []


def test_the_gateway_refuses_unknown_and_spent_tokens(tmp_path: Path) -> None:
    harness = [str(HARNESSES / "keep_calling.py")]
    with agent_broker(f"sqlite:///{tmp_path / 'g.sqlite3'}", tmp_path, harness, agent_max_steps=2) as live:
        bogus = httpx.post(
            f"{live.url}/gateway/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "x"}]},
            headers={"Authorization": "Bearer mkat_0123456789abcdef_" + "y" * 43},
        )
        assert bogus.status_code == 401 and bogus.json()["error"]["code"] == "invalid_token"
        with live.customer("cid") as cid:
            task = cid.post("/v1/tasks", json=replay_task(str(live.outcomes.instances[3]))).json()
            done = wait_final(cid, [task["id"]])[task["id"]]
        with live.store.reading() as session:
            steps = [c.attempt_id for c in session.execute(select(Call)).scalars()]
    assert all(steps.count(a) <= 2 for a in set(steps))  # the step limit held
    assert done["state"] in FINAL
    assert reports.check(live.store) == []


class Relay:
    """The test's side of `harnesses/relay.py`: attempts lent by the harness, and the candidates sent back."""

    def __init__(self) -> None:
        self.lent: queue.Queue[tuple[int, dict[str, str]]] = queue.Queue()
        self.candidates: dict[int, str] = {}
        tickets = itertools.count()
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                ticket = next(tickets)
                relay.lent.put((ticket, body))
                self._send({"ticket": ticket})

            def do_GET(self) -> None:
                self._send({"candidate": relay.candidates.get(int(self.path.rsplit("/", 1)[1]))})

            def _send(self, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_litellm_drives_the_gateway_streaming_and_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download of litellm's price list
    litellm = pytest.importorskip("litellm")
    relay = Relay()
    harness = [str(HARNESSES / "relay.py"), str(relay.port)]
    calls_made = 0
    with agent_broker(f"sqlite:///{tmp_path / 'l.sqlite3'}", tmp_path, harness, workers=1) as live:
        with live.customer("dan") as dan:
            task = dan.post("/v1/tasks", json=replay_task(str(live.outcomes.instances[5]))).json()
            deadline = time.monotonic() + 120
            while dan.get(f"/v1/tasks/{task['id']}").json()["state"] not in FINAL:
                assert time.monotonic() < deadline, "the task did not finish"
                try:
                    ticket, lent = relay.lent.get(timeout=0.2)
                except queue.Empty:
                    continue
                common = {"model": "openai/any-name", "api_base": lent["base_url"], "api_key": lent["api_key"]}
                messages = [{"role": "user", "content": "Solve it."}]
                first = litellm.completion(messages=messages, **common)
                chunks = list(
                    litellm.completion(messages=messages, stream=True, stream_options={"include_usage": True}, **common)
                )
                streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
                last = litellm.completion(messages=messages, **common).choices[0].message.content
                assert first.usage.total_tokens > 0 and first.choices[0].message.content.startswith("Replay turn 1")
                assert streamed.startswith(f"Replay turn 2 of {TURNS}") and "replay-outcome:" in last
                calls_made += TURNS
                relay.candidates[ticket] = last
            done = dan.get(f"/v1/tasks/{task['id']}").json()
        calls = _calls_by_attempt(live.store)
    relay.server.shutdown()
    assert done["attempts"] and calls_made == TURNS * len(done["attempts"])
    metered = [c for attempt_calls in calls.values() for c in attempt_calls]
    assert len(metered) == calls_made and all(c.state == "settled" and (c.cost_micro or 0) > 0 for c in metered)
    assert reports.check(live.store) == []


def test_a_live_check_with_agent_attempts_on_the_paper_pair_market(paper_data: Path) -> None:
    """Every attempt an agent run (three gateway calls a recorded attempt): the plan's predictions still hold."""
    from modelarb.core.plan import fit
    from modelarb.data import load_market
    from modelarb.service.replay.check import run_check

    outcomes, _ = load_market(paper_data / "swebench", ["gpt5mini", "deepseek"])
    plan = fit(outcomes, target_solve_rate=0.74)
    result = run_check(plan, outcomes, tasks=150, concurrency=32, workers=8, seed=1, agent_turns=3)
    print(result.to_dict())
    assert result.states.get("failed", 0) == 0 and result.ledger_balanced
    assert result.solve_rate.covers and result.spend.covers
