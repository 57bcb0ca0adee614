"""The broker's API at its edges: keys, other customers' tasks, bad requests, cancellation, paging, verifiers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import func, select

from broker_setup import PROVIDERS, Running, replay_task, running_broker, synthetic_market, synthetic_plan, wait_final
from modelarb.service import reports
from modelarb.service.api.app import create_app
from modelarb.service.broker import Broker, BrokerSettings
from modelarb.service.keys import create_key, revoke_key
from modelarb.service.replay.market import replay_providers_toml
from modelarb.service.settings import load_providers
from modelarb.service.store.engine import Store
from modelarb.service.store.tables import LedgerTransaction, Task
from servers import served


@pytest.fixture
def live(tmp_path: Path) -> Any:
    with running_broker(f"sqlite:///{tmp_path / 'api.sqlite3'}", tmp_path, workers=2) as running:
        yield running


def _count_tasks(running: Running) -> int:
    with running.store.reading() as session:
        return int(session.execute(select(func.count()).select_from(Task)).scalar_one())


def test_keys_are_required_checked_and_revocable(live: Running) -> None:
    body = replay_task(str(live.outcomes.instances[0]))
    missing = httpx.post(f"{live.url}/v1/tasks", json=body)
    assert missing.status_code == 401 and "Bearer" in missing.json()["error"]["message"]
    wrong = httpx.post(
        f"{live.url}/v1/tasks", json=body, headers={"Authorization": "Bearer mk_0123456789abcdef_" + "x" * 43}
    )
    assert wrong.status_code == 401
    key = create_key(live.store, "frank")
    assert httpx.post(f"{live.url}/v1/quotes", json={}, headers={"Authorization": f"Bearer {key}"}).status_code == 201
    revoke_key(live.store, key)
    revoked = httpx.post(f"{live.url}/v1/quotes", json={}, headers={"Authorization": f"Bearer {key}"})
    assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]["message"]
    assert _count_tasks(live) == 0


def test_a_customer_cannot_see_another_customers_task(live: Running) -> None:
    with live.customer("grace") as grace, live.customer("heidi") as heidi, live.admin() as admin:
        task = grace.post("/v1/tasks", json=replay_task(str(live.outcomes.instances[1]))).json()
        assert heidi.get(f"/v1/tasks/{task['id']}").status_code == 404
        assert heidi.post(f"/v1/tasks/{task['id']}/cancel").status_code == 404
        assert heidi.get("/v1/tasks").json()["tasks"] == []
        assert grace.get("/v1/ledger/summary").status_code == 403
        assert admin.get("/v1/tasks").status_code == 403
        summary = admin.get("/v1/ledger/summary")
        assert summary.status_code == 200
        wait_final(grace, [task["id"]])


@pytest.mark.parametrize(
    ("content", "status", "words"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b'{"messages": [{"role": "user", "content": "x"}], "max_price": 1}', 422, "verifier"),
        (b'{"messages": [], "verifier": {"kind": "exact", "expected": "1"}, "max_price": 1}', 422, "messages"),
        (
            b'{"messages": [{"role": "user", "content": "x"}], "verifier": {"kind": "exact", "expected": "1"}, '
            b'"max_price": -1}',
            422,
            "max_price",
        ),
        (
            b'{"messages": [{"role": "user", "content": "x"}], "verifier": {"kind": "exact", "expected": "1"}, '
            b'"max_price": 1e300}',
            422,
            "max_price",
        ),
        (
            b'{"messages": [{"role": "user", "content": "x"}], "verifier": {"kind": "magic"}, "max_price": 1}',
            422,
            "unknown verifier kind",
        ),
        (
            b'{"messages": [{"role": "user", "content": "x"}], "verifier": {"kind": "replay"}, "max_price": 1}',
            422,
            "instance",
        ),
        (
            b'{"messages": [{"role": "user", "content": "x"}], "verifier": {"kind": "exact", "expected": "1"}, '
            b'"max_price": 1e-9}',
            402,
            "above your max_price",
        ),
        (
            b'{"messages": [{"role": "user", "content": "x"}], "verifier": {"kind": "exact", "expected": "1"}, '
            b'"max_price": 1, "quote_id": "q-nope"}',
            404,
            "no quote",
        ),
    ],
)
def test_bad_requests_get_a_clear_4xx_and_change_nothing(
    live: Running, content: bytes, status: int, words: str
) -> None:
    with live.customer("ivan") as ivan:
        answer = ivan.post("/v1/tasks", content=content, headers={"Content-Type": "application/json"})
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"]["message"]
    assert "Traceback" not in answer.text
    assert _count_tasks(live) == 0
    assert reports.check(live.store) == []


def test_an_oversized_body_is_refused(live: Running) -> None:
    with live.customer("judy") as judy:
        huge = replay_task(str(live.outcomes.instances[0]))
        huge["messages"] = [{"role": "user", "content": "x" * 150_000}] * 10
        declared = judy.post("/v1/tasks", json=huge)
        chunked = judy.post(
            "/v1/tasks", content=iter([b"{" + b" " * 600_000] * 2), headers={"Content-Type": "application/json"}
        )
    assert declared.status_code == 413 and chunked.status_code == 413
    assert "larger than" in declared.json()["error"]["message"]
    assert _count_tasks(live) == 0


def test_cancel_a_queued_task_refunds_it_and_pages_list_everything(tmp_path: Path) -> None:
    with (
        running_broker(f"sqlite:///{tmp_path / 'c.sqlite3'}", tmp_path, workers=0) as live,
        live.customer("ken") as ken,
    ):
        ids = [ken.post("/v1/tasks", json=replay_task(str(i))).json()["id"] for i in live.outcomes.instances[:7]]
        cancelled = ken.post(f"/v1/tasks/{ids[0]}/cancel").json()
        assert cancelled["state"] == "cancelled" and cancelled["charged_micro"] == 0
        seen, after = [], None
        while True:
            page = ken.get("/v1/tasks", params={"limit": 3, **({"after": after} if after else {})}).json()
            seen += [t["id"] for t in page["tasks"]]
            after = page["next_after"]
            if after is None:
                break
        assert seen == ids
        with live.store.reading() as session:
            kinds = (
                session.execute(
                    select(LedgerTransaction.kind)
                    .where(LedgerTransaction.task_id == ids[0])
                    .order_by(LedgerTransaction.id)
                )
                .scalars()
                .all()
            )
        assert kinds == ["charge", "refund"]
        assert reports.check(live.store) == []


# --- the exact and python-tests verifiers, against a stand-in for an external model provider ---

RIGHT_CODE = "Here it is:\n```python\ndef add(a, b):\n    return a + b\n```\n"
WRONG_CODE = "```python\ndef add(a, b):\n    return a - b\n```"
TESTS = "from solution import add\n\ndef test_add():\n    assert add(2, 3) == 5\n"


def answering_provider(attempt_cost: dict[str, float]) -> FastAPI:
    """An OpenAI-compatible endpoint standing in for two real models: `strong` answers right, `cheap` wrong.

    Each reply's usage costs what the plan expects an attempt of that model to cost (at 1 per million tokens).
    """
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def complete(request: Request) -> dict[str, Any]:
        body = await request.json()
        right = body["model"] == "strong"
        completion = round(attempt_cost[body["model"]] * 1e6) - 20
        question = body["messages"][-1]["content"]
        answers = {"code": (RIGHT_CODE, WRONG_CODE), "number": ("42", "41")}["code" if "code" in question else "number"]
        answer = answers[0] if right else answers[1]
        return {
            "id": "chatcmpl-x",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 20, "completion_tokens": completion, "total_tokens": 20 + completion},
        }

    return app


@pytest.mark.parametrize(
    ("question", "verifier", "solution"),
    [
        ("What is six times seven?", {"kind": "exact", "expected": "42"}, "42"),
        ("What is six times seven?", {"kind": "exact", "expected": r"4\d", "regex": True}, "41"),
        ("Write code: add(a, b).", {"kind": "python-tests", "tests": TESTS}, RIGHT_CODE),
    ],
)
def test_exact_and_python_tests_verifiers_end_to_end(
    store_url: str, tmp_path: Path, question: str, verifier: dict[str, Any], solution: str
) -> None:
    outcomes = synthetic_market()
    plan = synthetic_plan(outcomes)
    with served(answering_provider(plan.require_live())) as provider_url:
        path = tmp_path / "providers.toml"
        path.write_text(replay_providers_toml(None, provider_url, PROVIDERS, 100_000))
        store = Store.open(store_url)
        broker = Broker(store, plan, load_providers(path), BrokerSettings(workers=2, poll_s=0.05))
        with served(create_app(broker)) as url:
            key = create_key(store, "leo")
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as leo:
                body = {"messages": [{"role": "user", "content": question}], "verifier": verifier, "max_price": 5}
                task = leo.post("/v1/tasks", json=body).json()
                done = wait_final(leo, [task["id"]])[task["id"]]
        assert done["state"] == "solved" and done["solution"] == solution
        verdicts = [(a["provider"], a["verified"]) for a in done["attempts"]]
        assert verdicts[-1][1] is True and all(ok is False for _, ok in verdicts[:-1])
        assert reports.check(store) == []
        store.close()


def test_a_task_whose_providers_are_down_fails_and_is_refunded(tmp_path: Path) -> None:
    outcomes = synthetic_market()
    plan = synthetic_plan(outcomes)
    down = FastAPI()
    calls = []

    @down.post("/v1/chat/completions")
    async def unavailable() -> Any:
        calls.append(1)
        return JSONResponse({"error": {"message": "overloaded"}}, status_code=503)

    with served(down) as provider_url:
        path = tmp_path / "providers.toml"
        text = replay_providers_toml(None, provider_url, PROVIDERS, 100_000)
        path.write_text(text.replace("send_metadata = true", "send_metadata = true\nmax_retries = 2\nbackoff_s = 0.01"))
        store = Store.open(f"sqlite:///{tmp_path / 'down.sqlite3'}")
        broker = Broker(store, plan, load_providers(path), BrokerSettings(workers=1, poll_s=0.05))
        with served(create_app(broker)) as url:
            key = create_key(store, "mallory")
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
                body = {
                    "messages": [{"role": "user", "content": "?"}],
                    "verifier": {"kind": "exact", "expected": "1"},
                    "max_price": 5,
                }
                task = client.post("/v1/tasks", json=body).json()
                done = wait_final(client, [task["id"]])[task["id"]]
    assert done["state"] == "failed" and done["charged_micro"] == 0
    assert "failed after 2 retries" in done["error"] and "503" in done["error"]
    stages = {a["stage"] for a in done["attempts"]}
    assert len(calls) == 3 * len(stages) >= 3 and all(a["state"] == "error" for a in done["attempts"])
    assert reports.check(store) == []
    store.close()


def test_health_metrics_and_json_logs(live: Running, caplog: pytest.LogCaptureFixture) -> None:
    import json
    import logging

    from modelarb.service.observability import JsonFormatter

    assert httpx.get(f"{live.url}/healthz").json()["database"] == "ok"
    with live.customer("nina") as nina, live.admin() as admin, caplog.at_level(logging.INFO, logger="modelarb"):
        ids = [nina.post("/v1/tasks", json=replay_task(str(i))).json()["id"] for i in live.outcomes.instances[:6]]
        nina.post("/v1/tasks", json=replay_task(str(live.outcomes.instances[0]), max_price=1e-6))
        wait_final(nina, ids)
        assert nina.get("/metrics").status_code == 403
        text = admin.get("/metrics").text
    for name in (
        "modelarb_tasks{",
        "modelarb_attempts{",
        "modelarb_provider_spend{",
        "modelarb_call_latency_seconds_bucket",
        "modelarb_reservations_outstanding",
        'modelarb_budget_refusals_total{limit="customer_price_or_limit"} 1.0',
    ):
        assert name in text, name
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "modelarb.tasks"]
    finished = [line for line in lines if line["message"] == "task finished"]
    assert {line["task_id"] for line in finished} == set(ids)
    assert all("task_id" in line for line in lines)
