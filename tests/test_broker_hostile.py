"""Hostile input against a real broker on loopback: schema fuzzing, junk bodies, forged keys, oversized replies.

Every request gets a 2xx or a 4xx `{"error": {"type", "message"}}` (never a 5xx or a traceback), a
rejected request changes nothing in the database, and the books balance afterwards. Runs on SQLite
and on PostgreSQL.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI, Request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import func, select

from broker_setup import PROVIDERS, synthetic_market, synthetic_plan, wait_final
from modelarb.service import reports
from modelarb.service.api.app import create_app
from modelarb.service.broker import Broker, BrokerSettings
from modelarb.service.keys import create_key
from modelarb.service.replay.market import replay_providers_toml
from modelarb.service.settings import load_providers
from modelarb.service.states import FINAL
from modelarb.service.store.engine import Store
from modelarb.service.store.tables import ApiKey, Attempt, Customer, LedgerEntry, LedgerTransaction, Quote, Task
from modelarb.service.verifiers import MAX_REPLY_CHARS
from postgres import PostgresServer
from servers import serve_in_thread

SCHEMA_EXAMPLES = 8
"""Examples per operation, key and generation mode (positive and negative)."""
MODEL_EXAMPLES = 40
"""Bodies per request model."""
OPERATIONS = (  # at least these; the fuzzing takes every operation the schema lists
    "POST /v1/quotes",
    "POST /v1/tasks",
    "GET /v1/tasks",
    "GET /v1/tasks/{task_id}",
    "POST /v1/tasks/{task_id}/cancel",
    "GET /v1/admin/plan",
    "POST /v1/admin/customers",
    "POST /v1/admin/keys",
    "POST /v1/admin/keys/{key_id}/revoke",
    "GET /v1/ledger/summary",
    "GET /healthz",
    "GET /metrics",
)
BIG_QUESTION = "Say something long."
ANSWER = "42"
EXACT = {"kind": "exact", "expected": ANSWER}


# --- a broker on loopback, its stand-in provider, and what its database holds ---


class DropTracebacks(logging.Filter):
    """Drop log records that carry an exception (their traceback is never formatted)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is None


@pytest.fixture(scope="module", autouse=True)
def quiet_server_tracebacks() -> Iterator[None]:
    """Keep the in-process servers from formatting the tracebacks of 500s (a regression would make some).

    On Python 3.11 before 3.11.8 a traceback is formatted with `ast.parse`, whose state all threads share:
    a server thread logging a 500 while pytest renders a failure crashes pytest ("AST constructor recursion
    depth mismatch"). A 500 still fails its test through the response. (A filter, not `disabled`: each
    uvicorn.Config re-enables its loggers.)
    """
    loggers = [logging.getLogger(name) for name in ("uvicorn.error", "modelarb.api")]
    drop = DropTracebacks()
    for logger in loggers:
        logger.addFilter(drop)
    yield
    for logger in loggers:
        logger.removeFilter(drop)


def answering_provider(attempt_cost: dict[str, float], big_reply_chars: int) -> FastAPI:
    """An OpenAI-compatible stand-in for both models: '42', or `big_reply_chars` characters to BIG_QUESTION.

    Each reply's usage costs what the plan expects an attempt of that model to cost (at 1 per million tokens).
    """
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def complete(request: Request) -> dict[str, Any]:
        body = await request.json()
        big = body["messages"][-1]["content"] == BIG_QUESTION
        completion = max(1, round(attempt_cost[body["model"]] * 1e6) - 10)
        return {
            "id": "chatcmpl-hostile",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "x" * big_reply_chars if big else ANSWER},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": completion, "total_tokens": 10 + completion},
        }

    return app


@dataclass
class Live:
    """A running broker: its URL, store, database kind, and a customer's and an admin's keys."""

    url: str
    store: Store
    database: str
    customer_key: str
    admin_key: str

    def client(self, key: str | None = None) -> httpx.Client:
        """A fresh connection (a 5xx must not poison the next request's keep-alive connection)."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@dataclass
class Database:
    url: str
    kind: str
    drop: Callable[[], None]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def open_database(request: pytest.FixtureRequest, kind: str, folder: Path) -> Database:
    if kind == "sqlite":
        return Database(f"sqlite:///{folder / 'broker.sqlite3'}", kind, lambda: None)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database()
    return Database(server.url(name), kind, lambda: server.drop_database(name))


@dataclass
class Started:
    live: Live
    stop: Callable[[], None]


def start_broker(database: Database, folder: Path, *, workers: int, big_reply_chars: int = 10) -> Started:
    """A broker on `database` buying from a stand-in provider; `workers=0` admits tasks without running them."""
    outcomes = synthetic_market()
    plan = synthetic_plan(outcomes)
    provider_url, stop_provider = serve_in_thread(answering_provider(plan.require_live(), big_reply_chars))
    store = Store.open(database.url)
    providers = folder / "providers.toml"
    providers.write_text(replay_providers_toml(None, provider_url, PROVIDERS, 100_000))
    broker = Broker(store, plan, load_providers(providers), BrokerSettings(workers=workers, poll_s=0.05))
    url, stop_broker = serve_in_thread(create_app(broker))
    live = Live(url, store, database.kind, create_key(store, "mallory"), create_key(store))

    def stop() -> None:
        stop_broker()
        store.close()
        stop_provider()
        database.drop()

    return Started(live, stop)


@pytest.fixture(scope="module")
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A broker on SQLite whose workers run tasks (solved by the stand-in's '42'): the schema fuzzing's target.

    The API layer is the same on both databases; what PostgreSQL refuses (NUL) is fuzzed by the model tests.
    """
    folder = tmp_path_factory.mktemp("live")
    started = start_broker(open_database(request, "sqlite", folder), folder, workers=2)
    yield started.live
    started.stop()


@pytest.fixture(scope="module")
def idle(
    request: pytest.FixtureRequest, database_kind: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    """A broker without workers: only requests change its database."""
    folder = tmp_path_factory.mktemp("idle")
    started = start_broker(open_database(request, database_kind, folder), folder, workers=0)
    yield started.live
    started.stop()


def state(store: Store) -> dict[str, Any]:
    """What a rejected request must leave alone: row counts, customers' limits and counters, keys' revocations."""
    counted = {
        "tasks": Task,
        "quotes": Quote,
        "attempts": Attempt,
        "ledger": LedgerTransaction,
        "legs": LedgerEntry,
        "keys": ApiKey,
    }
    with store.reading() as session:
        found: dict[str, Any] = {
            name: session.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in counted.items()
        }
        found["customers"] = sorted(
            session.execute(
                select(Customer.name, Customer.spending_limit_micro, Customer.reserved_micro, Customer.charged_micro)
            ).all()
        )
        found["revoked"] = sorted(session.execute(select(ApiKey.id).where(ApiKey.revoked_at.is_not(None))).scalars())
    return found


def quiet_state(store: Store) -> dict[str, Any]:
    """`state` without what a running broker's workers change (attempts, ledger, customers' counters)."""
    found = state(store)
    del found["attempts"], found["ledger"], found["legs"]
    found["customers"] = [(name, limit) for name, limit, _reserved, _charged in found["customers"]]
    return found


def assert_clean(answer: httpx.Response, *, openai_style: bool = False) -> None:
    """A 2xx, or a 4xx whose body is exactly `{"error": {"type", "message"}}`; never a 5xx or a traceback.

    `openai_style` (the agents' gateway): the error may carry OpenAI's extra fields (`param`, `code`).
    """
    assert answer.status_code < 500, (answer.status_code, answer.text[:500])
    for marker in ("Traceback", 'File "', "sqlalchemy", "psycopg"):
        assert marker not in answer.text, answer.text[:500]
    if answer.status_code >= 400:
        body = answer.json()
        fields = set(body["error"])
        assert set(body) == {"error"} and (
            fields >= {"type", "message"} if openai_style else fields == {"type", "message"}
        )
        assert all(isinstance(body["error"][f], str) and body["error"][f] for f in ("type", "message")), body


def wait_all_final(live: Live, timeout_s: float = 60) -> None:
    """Every task in the database final (tasks of every customer)."""
    with live.store.reading() as session:
        rows = session.execute(select(Task.id, Task.customer_id)).all()
    by_customer: dict[int, list[str]] = {}
    for task_id, customer_id in rows:
        by_customer.setdefault(customer_id, []).append(task_id)
    with live.store.reading() as session:
        names = dict(session.execute(select(Customer.id, Customer.name)).all())
    for customer_id, task_ids in by_customer.items():
        with live.client(create_key(live.store, names[customer_id])) as client:
            wait_final(client, task_ids, timeout_s)


# --- the OpenAPI schema, fuzzed by schemathesis ---


@pytest.fixture(scope="module")
def schema(live: Live) -> Any:
    return schemathesis.openapi.from_url(f"{live.url}/openapi.json")


def fuzz_operation(live: Live, operation: Any) -> int:
    """Schemathesis examples of one operation, positive and negative, with each key; returns how many ran."""
    ran = 0
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        for key in (live.customer_key, live.admin_key):
            try:
                ran += fuzz_cases(live, operation, mode, {"Authorization": f"Bearer {key}"})
            except Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE  # nothing to make invalid (no parameters, no body)
    return ran


def fuzz_cases(live: Live, operation: Any, mode: GenerationMode, headers: dict[str, str]) -> int:
    """SCHEMA_EXAMPLES cases of `operation` in `mode`, sent with `headers`; returns how many were sent."""
    sent = 0
    fill_verifier = operation.label == "POST /v1/tasks" and mode == GenerationMode.POSITIVE
    openai_style = operation.path.startswith("/gateway/")

    @settings(
        max_examples=SCHEMA_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(mode))
    def fuzz(case: Any) -> None:
        nonlocal sent
        if fill_verifier and isinstance(case.body, dict):
            case.body["verifier"] = EXACT  # the schema leaves the verifier free-form: reach admission
        before = quiet_state(live.store)
        response = case.call(base_url=live.url, headers=headers)
        sent += 1
        case.validate_response(response, checks=[not_a_server_error, content_type_conformance], headers=headers)
        assert_clean(httpx.Response(response.status_code, content=response.content), openai_style=openai_style)
        if response.status_code >= 400:
            assert quiet_state(live.store) == before

    fuzz()
    return sent


def test_schemathesis_finds_no_5xx_no_traceback_and_no_change_on_rejection(live: Live, schema: Any) -> None:
    """Every operation of the schema (new ones included), each failure reported with its operation."""
    ran: dict[str, int] = {}
    failures: dict[str, str] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        try:
            ran[operation.label] = fuzz_operation(live, operation)
        except (Exception, BaseExceptionGroup) as failure:  # schemathesis raises groups of failures
            failures[operation.label] = str(failure)[:2000]
    print(f"schemathesis ({live.database}): {sum(ran.values())} examples over {len(ran)} operations: {ran}")
    assert failures == {}
    assert set(OPERATIONS) <= set(ran) and all(count >= 2 for count in ran.values())
    wait_all_final(live)
    assert reports.check(live.store) == []


def test_responses_conform_to_the_schema(live: Live, schema: Any) -> None:
    headers = {"Authorization": f"Bearer {live.customer_key}"}
    operation = schema.find_operation_by_label("POST /v1/quotes")
    case = operation.Case(body={})
    response = case.call(base_url=live.url, headers=headers)
    assert response.status_code == 201
    case.validate_response(response, checks=[response_schema_conformance], headers=headers)


def test_every_status_the_api_answers_is_in_its_schema(live: Live, schema: Any) -> None:
    operation = schema.find_operation_by_label("POST /v1/quotes")
    case = operation.Case(body={})
    response = case.call(base_url=live.url, headers={"Authorization": "Bearer mk_0123456789abcdef_" + "x" * 43})
    assert response.status_code == 401
    case.validate_response(response, checks=[status_code_conformance])


# --- every request model, with random JSON bodies ---

PLAIN = st.text(max_size=24)  # any character but lone surrogates (NUL included)
TEXT = PLAIN | st.text(st.characters(exclude_categories=()), max_size=24)  # lone surrogates too
JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=6,
)
NUMBER = st.floats(allow_nan=True, allow_infinity=True) | st.integers(min_value=-(2**70), max_value=2**70) | JUNK
NAME = PLAIN.filter(lambda name: 0 < len(name) <= 200)
ROLES = ["user", "system", "developer", "assistant"]
CHARGING = ["per_task", "per_solution"]
VALID = {
    "TaskRequestBody": st.fixed_dictionaries(
        {
            "messages": st.lists(st.fixed_dictionaries({"role": st.sampled_from(ROLES), "content": PLAIN}), min_size=1),
            "verifier": st.one_of(
                st.fixed_dictionaries(
                    {"kind": st.just("exact"), "expected": PLAIN}, optional={"regex": st.just(False)}
                ),
                st.fixed_dictionaries({"kind": st.just("python-tests"), "tests": PLAIN}),
            ),
            "max_price": st.floats(min_value=1e-6, max_value=1e9),
        },
        optional={
            "charging": st.sampled_from(CHARGING),
            "instance": NAME,
            "metadata": st.dictionaries(PLAIN, PLAIN, max_size=3),
        },
    ),
    "QuoteRequest": st.fixed_dictionaries({}, optional={"charging": st.sampled_from([*CHARGING, None])}),
    "CustomerRequest": st.fixed_dictionaries(
        {"name": NAME}, optional={"spending_limit": st.none() | st.floats(min_value=0, max_value=1e9)}
    ),
    "KeyRequest": st.fixed_dictionaries({}, optional={"customer": NAME}),
}
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from([*ROLES, "tool", ""]) | JUNK, "content": TEXT | JUNK}, optional={"name": JUNK}
)
VERIFIER = st.one_of(
    st.fixed_dictionaries({"kind": st.just("exact"), "expected": TEXT | JUNK}, optional={"regex": JUNK}),
    st.fixed_dictionaries({"kind": st.just("python-tests"), "tests": TEXT | JUNK}, optional={"timeout_s": NUMBER}),
    st.fixed_dictionaries({"kind": st.sampled_from(["replay", "command", "magic", ""])}, optional={"name": TEXT}),
    JUNK,
)
SHAPED = {
    "TaskRequestBody": st.fixed_dictionaries(
        {"messages": st.lists(MESSAGE, max_size=3) | JUNK, "verifier": VERIFIER, "max_price": NUMBER},
        optional={
            "quote_id": TEXT | JUNK,
            "charging": st.sampled_from([*CHARGING, "PER_TASK"]) | JUNK,
            "instance": TEXT | JUNK,
            "metadata": st.dictionaries(TEXT, TEXT | JUNK, max_size=40) | JUNK,
            "extra": JUNK,
        },
    ),
    "QuoteRequest": st.fixed_dictionaries(
        {}, optional={"charging": st.sampled_from(["free", ""]) | JUNK, "extra": JUNK}
    ),
    "CustomerRequest": st.fixed_dictionaries(
        {"name": st.text(max_size=210) | JUNK}, optional={"spending_limit": NUMBER, "extra": JUNK}
    ),
    "KeyRequest": st.fixed_dictionaries({}, optional={"customer": st.text(max_size=210) | JUNK, "extra": JUNK}),
}
ENDPOINTS = {
    "TaskRequestBody": ("/v1/tasks", "customer"),
    "QuoteRequest": ("/v1/quotes", "customer"),
    "CustomerRequest": ("/v1/admin/customers", "admin"),
    "KeyRequest": ("/v1/admin/keys", "admin"),
}
GROWS = {"TaskRequestBody": "tasks", "QuoteRequest": "quotes", "KeyRequest": "keys"}
"""What one accepted request of each model adds one row to (a customer request adds at most one customer)."""


def depth_bomb(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def nested_verifier(depth: int) -> bytes:
    """A task whose verifier's `expected` is nested `depth` arrays deep."""
    head = (
        b'{"messages": [{"role": "user", "content": "x"}], "max_price": 1, "verifier": {"kind": "exact", "expected": '
    )
    return head + depth_bomb(depth) + b"}}"


RAW = st.one_of(
    st.integers(min_value=1, max_value=200_000).map(depth_bomb),
    st.integers(min_value=1, max_value=200_000).map(nested_verifier),
    st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"null", b"[]", b'"x"', b"", b"{", b'{"a":', b"\xff\xfe"]),
    st.binary(max_size=64),
    st.sampled_from([10_000, 500_000, 1_100_000]).map(lambda n: json.dumps({"name": "x" * n}).encode()),
)


def encode(body: Any) -> bytes:
    """JSON as a lax client writes it: NaN and Infinity as bare literals, non-ASCII escaped (surrogates too)."""
    return json.dumps(body, allow_nan=True).encode()


def has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


@pytest.mark.parametrize("model", sorted(VALID))
def test_every_request_model_answers_random_bodies_with_a_2xx_or_a_clean_4xx(idle: Live, model: str) -> None:
    path, who = ENDPOINTS[model]
    key = idle.customer_key if who == "customer" else idle.admin_key

    def allowed(body: Any) -> bool:  # NUL: test_nul_characters_are_a_4xx covers it
        return idle.database != "postgresql" or not has_nul(body)

    valid, shaped = VALID[model].filter(allowed).map(encode), SHAPED[model].filter(allowed).map(encode)
    answered: Counter[int] = Counter()

    @settings(
        max_examples=MODEL_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(content=st.one_of(valid, valid, shaped, shaped, JUNK.filter(allowed).map(encode), RAW))
    def post(content: bytes) -> None:
        before = state(idle.store)
        answer = client.post(path, content=content, headers={"Content-Type": "application/json"})
        answered[answer.status_code] += 1
        assert_clean(answer)
        after = state(idle.store)
        if answer.status_code >= 400:
            assert after == before
        elif model in GROWS:
            assert after[GROWS[model]] == before[GROWS[model]] + 1
        else:
            assert len(before["customers"]) <= len(after["customers"]) <= len(before["customers"]) + 1

    with idle.client(key) as client:
        post()
    print(f"{model} ({idle.database}): statuses {dict(sorted(answered.items()))}")
    assert sum(answered.values()) >= MODEL_EXAMPLES
    assert sum(n for status, n in answered.items() if status < 300) >= 1  # the bodies reach admission, not all rejected
    assert reports.check(idle.store) == []


NUL_TASK = {"messages": [{"role": "user", "content": "x"}], "verifier": EXACT, "max_price": 5, "quote_id": "q-\x00"}


@pytest.mark.parametrize(
    ("method", "path", "who", "body"),
    [
        ("POST", "/v1/admin/customers", "admin", {"name": "nul\x00name"}),
        ("POST", "/v1/admin/keys", "admin", {"customer": "nul\x00name"}),
        ("POST", "/v1/tasks", "customer", NUL_TASK),
        ("GET", "/v1/tasks?after=t-%00", "customer", None),
        ("GET", "/v1/tasks/t-%00", "customer", None),
        ("POST", "/v1/admin/keys/%00/revoke", "admin", None),
    ],
    ids=["customer-name", "key-customer", "quote-id", "after", "task-id", "key-id"],
)
def test_nul_characters_are_a_4xx(
    idle: Live, request: pytest.FixtureRequest, method: str, path: str, who: str, body: Any
) -> None:
    key = idle.customer_key if who == "customer" else idle.admin_key
    before = state(idle.store)
    with idle.client(key) as client:
        answer = client.request(method, path, json=body)
    assert_clean(answer)
    assert answer.status_code in (201, 404, 422)
    if answer.status_code >= 400:
        assert state(idle.store) == before


def test_revoking_an_unknown_key_is_a_404(idle: Live) -> None:
    before = state(idle.store)
    with idle.client(idle.admin_key) as client:
        answer = client.post("/v1/admin/keys/0123456789abcdef/revoke")
    assert_clean(answer)
    assert state(idle.store) == before
    assert answer.status_code == 404, answer.text


def test_a_lone_surrogate_is_refused_and_changes_nothing(idle: Live) -> None:
    before = state(idle.store)
    with idle.client(idle.admin_key) as client:
        answer = client.post(
            "/v1/admin/customers",
            content=b'{"name": "lone \\ud800 surrogate"}',
            headers={"Content-Type": "application/json"},
        )
    assert_clean(answer)
    assert answer.status_code == 422 and state(idle.store) == before


@pytest.mark.parametrize("since", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+14:00"])
def test_a_since_at_the_edge_of_time_is_not_a_500(idle: Live, since: str) -> None:
    with idle.client(idle.admin_key) as client:
        answer = client.get("/v1/ledger/summary", params={"since": since})
    assert_clean(answer)


# --- keys: anything but the exact key is a 401 that costs nothing ---


def mutations(key: str) -> st.SearchStrategy[str]:
    """Keys one edit (or a case change, or a cut) away from `key`."""
    position = st.integers(min_value=0, max_value=len(key) - 1)
    char = st.sampled_from("abcdefABCDEF0123456789_-xyzXYZ")
    return st.one_of(
        st.tuples(position, char).map(lambda pc: key[: pc[0]] + pc[1] + key[pc[0] + 1 :]),
        st.tuples(position, char).map(lambda pc: key[: pc[0]] + pc[1] + key[pc[0] :]),
        position.map(lambda p: key[:p] + key[p + 1 :]),
        position.map(lambda p: key[:p]),
        char.map(lambda c: key + c),
        st.just(key.upper()),
        st.just(key.swapcase()),
        position.map(lambda p: key[:p] + key[p].swapcase() + key[p + 1 :]),
        st.just(key.rsplit("_", 1)[0] + "_" + "A" * len(key.rsplit("_", 1)[1])),  # the right id, a wrong secret
    )


@pytest.mark.parametrize("who", ["customer", "admin"])
def test_a_key_that_is_not_exactly_right_is_a_401_and_costs_nothing(idle: Live, who: str) -> None:
    key = idle.customer_key if who == "customer" else idle.admin_key
    path = "/v1/quotes" if who == "customer" else "/v1/admin/keys"
    tried: set[str] = set()

    @settings(max_examples=40, derandomize=True, deadline=None, database=None)
    @given(forged=mutations(key))
    def forge(forged: str) -> None:
        if forged == key:
            return
        tried.add(forged)
        before = state(idle.store)
        answer = client.post(path, json={}, headers={"Authorization": f"Bearer {forged}"})
        assert answer.status_code == 401, (forged, answer.text)
        assert_clean(answer)
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert state(idle.store) == before

    with idle.client() as client:
        forge()
        assert len(tried) >= 20
        answer = client.post(path, json={}, headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 201  # the key itself still works


# --- verifier input bounded: a reply over MAX_REPLY_CHARS is rejected, and the broker keeps serving ---


@pytest.fixture
def oversized(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Live]:
    database = Database(f"sqlite:///{tmp_path / 'big.sqlite3'}", "sqlite", lambda: None)
    started = start_broker(
        database, tmp_path, workers=1, big_reply_chars=getattr(request, "param", MAX_REPLY_CHARS + 1)
    )
    yield started.live
    started.stop()


def submit(client: httpx.Client, question: str) -> dict[str, Any]:
    body = {"messages": [{"role": "user", "content": question}], "verifier": EXACT, "max_price": 5}
    answer = client.post("/v1/tasks", json=body)
    assert answer.status_code == 202, answer.text
    task_id = answer.json()["id"]
    return wait_final(client, [task_id], timeout_s=60)[task_id]


def test_a_reply_over_the_verifiers_limit_is_rejected_and_the_broker_keeps_serving(oversized: Live) -> None:
    with oversized.client(oversized.customer_key) as client:
        big = submit(client, BIG_QUESTION)
        assert big["state"] == "unsolved" and big["attempts"]
        for attempt in big["attempts"]:
            assert attempt["state"] == "rejected" and attempt["verified"] is False
            assert attempt["verdict"] == (
                f"the reply is {MAX_REPLY_CHARS + 1} characters long: the limit is {MAX_REPLY_CHARS}"
            )
        honest = submit(client, "What is six times seven?")
    assert honest["state"] == "solved" and honest["solution"] == ANSWER
    assert reports.check(oversized.store) == []


@pytest.mark.parametrize("oversized", [4 * MAX_REPLY_CHARS], indirect=True)
def test_a_huge_provider_reply_is_not_stored_whole(oversized: Live) -> None:
    with oversized.client(oversized.customer_key) as client:
        big = submit(client, BIG_QUESTION)
    assert big["state"] in FINAL and all(a["verified"] is not True for a in big["attempts"])
    with oversized.store.reading() as session:
        lengths = [len(reply or "") for reply in session.execute(select(Attempt.reply)).scalars()]
    assert max(lengths) <= MAX_REPLY_CHARS
