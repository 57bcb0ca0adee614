"""The providers file and the OpenAI-compatible client, against a real HTTP server on loopback.

The server plays an external provider: the first path segment of the base URL picks how it
answers (`http://127.0.0.1:PORT/<behaviour>/v1/chat/completions`).
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelarb.errors import ServiceError
from modelarb.service.providers import CallOutcome, ProviderClient, prompt_token_bound
from modelarb.service.settings import ProviderConfig, catalogue_prices, check_covers, load_providers

SLOW_REPLY_S = 1.5
BUSY_REPLY_S = 0.2


@dataclass
class Seen:
    """What the fake provider saw; requests in flight are counted per behaviour."""

    requests: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=dict)
    most_in_flight: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _completion(text: str, usage: dict[str, int] | None) -> dict[str, Any]:
    reply: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    }
    if usage is not None:
        reply["usage"] = usage
    return reply


USAGE = {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150}


class FakeProvider(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: Seen

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length))
        behaviour = self.path.strip("/").split("/")[0]
        seen = self.seen
        with seen.lock:
            seen.requests.append((self.path, dict(self.headers), body))
            seen.in_flight[behaviour] = now = seen.in_flight.get(behaviour, 0) + 1
            seen.most_in_flight[behaviour] = max(seen.most_in_flight.get(behaviour, 0), now)
        try:
            self._answer(behaviour)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with seen.lock:
                seen.in_flight[behaviour] -= 1

    def _answer(self, behaviour: str) -> None:
        if behaviour == "ok":
            self._json(200, _completion("the answer is 42", USAGE))
        elif behaviour == "parts":
            reply = _completion("", USAGE)
            reply["choices"][0]["message"]["content"] = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
            self._json(200, reply)
        elif behaviour == "busy":
            time.sleep(BUSY_REPLY_S)
            self._json(200, _completion("done", USAGE))
        elif behaviour == "ratelimited":
            error = {"error": {"message": "Rate limit reached for requests", "type": "rate_limit"}}
            self._json(429, error, {"Retry-After": "7"})
        elif behaviour == "ratelimiteddate":
            self._json(429, {"error": "slow down"}, {"Retry-After": formatdate(time.time() + 10, usegmt=True)})
        elif behaviour == "servererror":
            self._json(500, {"error": {"message": "internal error"}})
        elif behaviour == "badrequest":
            self._json(400, {"error": {"message": "max_tokens is too large"}})
        elif behaviour == "billederror":
            self._json(502, {"error": {"message": "upstream died"}, "usage": USAGE})
        elif behaviour == "malformed":
            self._send(200, b'{"choices": [{"message": ')
        elif behaviour == "nochoices":
            self._json(200, {"id": "x", "choices": [], "usage": USAGE})
        elif behaviour == "nousage":
            self._json(200, _completion("no bill attached", None))
        elif behaviour == "slow":
            time.sleep(SLOW_REPLY_S)
            self._json(200, _completion("too late", USAGE))
        elif behaviour == "drop":
            self.close_connection = True  # hang up without a reply
        elif behaviour == "truncated":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b'{"choices": [')
            self.close_connection = True
        else:
            self._json(404, {"error": {"message": f"no behaviour {behaviour}"}})


@pytest.fixture(scope="module")
def provider_server() -> Iterator[tuple[str, Seen]]:
    seen = Seen()
    handler = type("Handler", (FakeProvider,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def config(url: str, **overrides: Any) -> ProviderConfig:
    fields: dict[str, Any] = {
        "name": "cheap",
        "base_url": url,
        "model": "cheap-model",
        "input_price": Decimal("0.5"),
        "output_price": Decimal("2"),
        "max_tokens": 4096,
        "timeout_s": 5,
    }
    return ProviderConfig.model_validate({**fields, **overrides})


def call(server: tuple[str, Seen], behaviour: str, **overrides: Any) -> CallOutcome:
    url, _ = server
    with ProviderClient(config(f"{url}/{behaviour}/v1", **overrides)) as client:
        messages = [{"role": "user", "content": "What is 6 × 7?"}]
        return client.call(messages, max_tokens=100, call_id=f"call-{behaviour}", metadata=None)


# -- calls -------------------------------------------------------------------------------------


def test_success_is_priced_from_usage_and_sends_the_request_openai_expects(provider_server, monkeypatch) -> None:
    url, seen = provider_server
    monkeypatch.setenv("TEST_PROVIDER_KEY", "sk-test-123")
    cfg = config(f"{url}/ok/v1/", api_key_env="TEST_PROVIDER_KEY", send_metadata=True)
    with ProviderClient(cfg) as client:
        messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "6 × 7?"}]
        outcome = client.call(messages, max_tokens=64, call_id="task-9/attempt-1", metadata={"task": "9"})
    assert outcome.ok and not outcome.retryable and outcome.error is None
    assert outcome.text == "the answer is 42" and outcome.finish_reason == "stop" and outcome.status_code == 200
    assert (outcome.input_tokens, outcome.output_tokens) == (120, 30)
    assert outcome.reported_cost_micro == 120 * 0.5 + 30 * 2 == 120
    assert not outcome.usage_missing and outcome.latency_s > 0
    path, headers, body = next(r for r in seen.requests if r[1].get("Idempotency-Key") == "task-9/attempt-1")
    assert path == "/ok/v1/chat/completions"
    assert headers["Authorization"] == "Bearer sk-test-123" and headers["X-Request-Id"] == "task-9/attempt-1"
    assert body == {"model": "cheap-model", "messages": messages, "max_tokens": 64, "metadata": {"task": "9"}}


def test_no_key_means_no_authorization_header_and_no_metadata_field(provider_server) -> None:
    outcome = call(provider_server, "ok")
    assert outcome.ok
    _, headers, body = next(r for r in provider_server[1].requests if r[1].get("Idempotency-Key") == "call-ok")
    assert "Authorization" not in headers and "metadata" not in body


def test_content_parts_are_joined(provider_server) -> None:
    assert call(provider_server, "parts").text == "ab"


def test_rate_limit_is_retryable_with_retry_after_seconds(provider_server) -> None:
    outcome = call(provider_server, "ratelimited")
    assert not outcome.ok and outcome.retryable and outcome.status_code == 429
    assert outcome.retry_after_s == 7.0
    assert outcome.error == "HTTP 429: Rate limit reached for requests"
    assert outcome.reported_cost_micro is None and not outcome.usage_missing


def test_retry_after_as_http_date(provider_server) -> None:
    outcome = call(provider_server, "ratelimiteddate")
    assert outcome.retryable and outcome.retry_after_s is not None and 8.0 <= outcome.retry_after_s <= 10.5
    assert outcome.error == "HTTP 429: slow down"


def test_server_error_is_retryable_and_client_error_is_not(provider_server) -> None:
    five = call(provider_server, "servererror")
    assert not five.ok and five.retryable and five.status_code == 500 and five.error == "HTTP 500: internal error"
    four = call(provider_server, "badrequest")
    assert not four.ok and not four.retryable and four.status_code == 400 and "max_tokens is too large" in four.error


def test_an_error_reply_that_carries_usage_is_priced(provider_server) -> None:
    outcome = call(provider_server, "billederror")
    assert not outcome.ok and outcome.retryable and outcome.status_code == 502
    assert (outcome.input_tokens, outcome.output_tokens, outcome.reported_cost_micro) == (120, 30, 120)


def test_malformed_json_and_missing_choices_are_retryable_failures(provider_server) -> None:
    malformed = call(provider_server, "malformed")
    assert not malformed.ok and malformed.retryable and malformed.status_code == 200
    assert "malformed JSON" in malformed.error and malformed.usage_missing and malformed.text is None
    empty = call(provider_server, "nochoices")
    assert not empty.ok and empty.retryable and "no choices" in empty.error
    assert empty.reported_cost_micro == 120 and not empty.usage_missing


def test_missing_usage_keeps_the_text_and_says_so(provider_server) -> None:
    outcome = call(provider_server, "nousage")
    assert outcome.ok and outcome.text == "no bill attached" and outcome.usage_missing
    assert outcome.input_tokens is None and outcome.reported_cost_micro is None


def test_slow_reply_times_out_as_a_retryable_failure(provider_server) -> None:
    started = time.monotonic()
    outcome = call(provider_server, "slow", timeout_s=0.3)
    assert time.monotonic() - started < SLOW_REPLY_S
    assert not outcome.ok and outcome.retryable and outcome.status_code is None
    assert outcome.error.startswith("timed out after 0.3 s") and 0.3 <= outcome.latency_s < SLOW_REPLY_S


@pytest.mark.parametrize("behaviour", ["drop", "truncated"])
def test_dropped_connection_is_a_retryable_failure(provider_server, behaviour: str) -> None:
    outcome = call(provider_server, behaviour)
    assert not outcome.ok and outcome.retryable and outcome.status_code is None
    assert outcome.error.startswith("connection failed")


def test_nothing_listening_is_a_retryable_failure() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with ProviderClient(config(f"http://127.0.0.1:{port}/v1")) as client:
        outcome = client.call([{"role": "user", "content": "hi"}], max_tokens=5, call_id="c", metadata=None)
    assert not outcome.ok and outcome.retryable and outcome.error.startswith("connection failed")


def test_concurrency_limit_holds(provider_server) -> None:
    url, seen = provider_server
    with ProviderClient(config(f"{url}/busy/v1", concurrency=2)) as client:
        outcomes: list[CallOutcome] = []

        def one(i: int) -> None:
            outcomes.append(
                client.call([{"role": "user", "content": "x"}], max_tokens=5, call_id=f"b{i}", metadata=None)
            )

        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    assert len(outcomes) == 8 and all(o.ok for o in outcomes)
    assert seen.most_in_flight["busy"] == 2


def test_a_shared_http_client_is_used_and_left_open(provider_server) -> None:
    url, _ = provider_server
    with httpx.Client() as shared:
        client = ProviderClient(config(f"{url}/ok/v1"), http=shared)
        assert client.call([{"role": "user", "content": "x"}], max_tokens=5, call_id="s", metadata=None).ok
        client.close()
        assert not shared.is_closed


# -- backoff -----------------------------------------------------------------------------------


def test_backoff_is_jittered_exponential_capped_and_respects_retry_after() -> None:
    client = ProviderClient(config("http://127.0.0.1:9/v1", backoff_s=0.5, max_backoff_s=4))
    rng = random.Random(7)
    for retry in range(12):
        ceiling = min(4.0, 0.5 * 2**retry)
        delays = [client.backoff_s(retry, None, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > 0.8 * ceiling  # full jitter reaches near the ceiling
    assert all(client.backoff_s(0, 3.0, rng) >= 3.0 for _ in range(50))
    assert client.backoff_s(0, 3600.0, rng) == 16.0  # Retry-After capped at 4 × max_backoff_s
    with pytest.raises(ValueError):
        client.backoff_s(-1, None, rng)
    client.close()


# -- money -------------------------------------------------------------------------------------


def test_worst_case_cost_and_max_tokens_arithmetic() -> None:
    client = ProviderClient(config("http://127.0.0.1:9/v1", input_price="0.15", output_price="0.6", max_tokens=1000))
    assert client.cost_micro(1000, 100) == 150 + 60
    assert client.cost_micro(1, 1) == 1  # 0.75 rounds up
    assert client.worst_case_micro(1000, 1000) == 750
    assert client.max_tokens_within(750, 1000) == 1000
    assert client.max_tokens_within(10**9, 1000) == 1000  # capped by config.max_tokens
    assert client.max_tokens_within(210, 1000) == 100
    assert client.max_tokens_within(149, 1000) == 0  # the prompt alone does not fit
    assert client.max_tokens_within(150, 1000) == 0
    assert client.max_tokens_within(151, 1000) == 1
    free = ProviderClient(config("http://127.0.0.1:9/v1", input_price=0, output_price=0, max_tokens=77))
    assert free.max_tokens_within(0, 10**6) == 77 and free.worst_case_micro(10**6, 77) == 0
    client.close()
    free.close()


_SHARED = httpx.Client()
prices = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(
    input_price=prices,
    output_price=prices,
    cap=st.integers(1, 10**7),
    budget=st.integers(0, 10**9),
    prompt=st.integers(0, 10**6),
)
def test_max_tokens_within_is_the_largest_that_fits(input_price, output_price, cap, budget, prompt) -> None:
    client = ProviderClient(
        config("http://127.0.0.1:9/v1", input_price=input_price, output_price=output_price, max_tokens=cap),
        http=_SHARED,
    )
    tokens = client.max_tokens_within(budget, prompt)
    assert 0 <= tokens <= cap
    if tokens > 0:
        assert client.worst_case_micro(prompt, tokens) <= budget
    if tokens < cap:
        assert client.worst_case_micro(prompt, tokens + 1) > budget


def test_prompt_token_bound_counts_bytes_plus_overheads() -> None:
    one = [{"role": "user", "content": "héllo"}]  # 6 bytes of content, 4 + 7 of keys, 4 of role
    assert prompt_token_bound(one) == 16 + 8 + len("role") + len("user") + len("content") + 6
    two = [*one, {"role": "assistant", "content": None, "name": "bot"}]
    assert prompt_token_bound(two) > prompt_token_bound(one) + 8
    parts = [{"role": "user", "content": [{"type": "text", "text": "x" * 100}]}]
    assert prompt_token_bound(parts) > 100
    assert prompt_token_bound([]) == 16


# -- the providers file ------------------------------------------------------------------------

GOOD = """
[providers.gpt5mini]
base_url = "http://127.0.0.1:8090/v1"
model = "gpt5mini"
api_key_env = "MODELARB_TEST_REPLAY_KEY"
input_price = 1.0
output_price = 0.15
max_tokens = 2000000
timeout_s = 30
concurrency = 64

[providers.cheap]
base_url = "https://api.openai.com/v1"
model = "gpt-4o-mini"
max_tokens = 1000
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "providers.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_providers_reads_the_file_and_looks_up_missing_prices(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MODELARB_TEST_REPLAY_KEY", "k")
    providers = load_providers(write(tmp_path, GOOD))
    assert set(providers) == {"gpt5mini", "cheap"}
    replay = providers["gpt5mini"]
    assert replay.name == "gpt5mini" and replay.prices == (Decimal("1.0"), Decimal("0.15"))
    assert (replay.timeout_s, replay.concurrency, replay.max_retries) == (30.0, 64, 3)
    assert replay.price_source == "providers file" and replay.api_key() == "k"
    cheap = providers["cheap"]
    assert cheap.prices == (Decimal("0.15"), Decimal("0.6"))
    assert cheap.price_source == "genai-prices openai/gpt-4o-mini"
    check_covers(providers, ["cheap", "gpt5mini"])
    with pytest.raises(ServiceError, match=r"provider\(s\) strong .*add \[providers.strong\]"):
        check_covers(providers, ["cheap", "strong"])


def test_price_lookup_works_offline(monkeypatch) -> None:
    def no_network(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("genai-prices tried the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    assert catalogue_prices("gpt-4o-mini") == (Decimal("0.15"), Decimal("0.6"), "genai-prices openai/gpt-4o-mini")
    assert catalogue_prices("claude-3-5-haiku-latest") is not None
    assert catalogue_prices("surely-not-a-model-0xdead") is None


def test_one_given_price_keeps_it_and_looks_up_the_other() -> None:
    cfg = ProviderConfig(name="p", base_url="https://x.example/v1", model="gpt-4o-mini", max_tokens=5, input_price=2)
    assert cfg.prices == (Decimal(2), Decimal("0.6"))


BAD_FILES = {
    "unknown model": (
        '[providers.mystery]\nbase_url = "http://h/v1"\nmodel = "no-such-model-x"\nmax_tokens = 5\n',
        r"provider 'mystery'.*no price known for model 'no-such-model-x'.*set input_price and output_price",
    ),
    "bad toml": ('[providers.a]\nbase_url = "http://h/v1"\nmodel = \n', r"not valid TOML.*line 3"),
    "unknown field": (
        '[providers.a]\nbase_url = "http://h/v1"\nmodel = "m"\nmax_tokens = 5\ninput_price = 1\noutput_price = 1\n'
        "temperature = 0.2\n",
        r"provider 'a', field 'temperature': unknown field",
    ),
    "missing field": (
        '[providers.a]\nbase_url = "http://h/v1"\nmodel = "m"\ninput_price = 1\noutput_price = 1\n',
        r"provider 'a', field 'max_tokens': missing",
    ),
    "wrong type": (
        '[providers.a]\nbase_url = "http://h/v1"\nmodel = "m"\nmax_tokens = "lots"\ninput_price = 1\n'
        "output_price = 1\n",
        r"provider 'a', field 'max_tokens': .*integer",
    ),
    "negative price": (
        '[providers.a]\nbase_url = "http://h/v1"\nmodel = "m"\nmax_tokens = 5\ninput_price = -1\noutput_price = 1\n',
        r"provider 'a', field 'input_price': .*greater than or equal to 0",
    ),
    "bad url": (
        '[providers.a]\nbase_url = "api.openai.com"\nmodel = "m"\nmax_tokens = 5\ninput_price = 1\noutput_price = 1\n',
        r"provider 'a', field 'base_url': .*not an http\(s\) URL",
    ),
    "zero concurrency": (
        '[providers.a]\nbase_url = "http://h/v1"\nmodel = "m"\nmax_tokens = 5\ninput_price = 1\noutput_price = 1\n'
        "concurrency = 0\n",
        r"provider 'a', field 'concurrency': .*greater than 0",
    ),
    "unset key variable": (
        '[providers.a]\nbase_url = "http://h/v1"\nmodel = "m"\nmax_tokens = 5\ninput_price = 1\noutput_price = 1\n'
        'api_key_env = "MODELARB_TEST_SURELY_UNSET"\n',
        r"provider 'a'.*MODELARB_TEST_SURELY_UNSET.*unset",
    ),
    "name mismatch": (
        '[providers.a]\nname = "b"\nbase_url = "http://h/v1"\nmodel = "m"\nmax_tokens = 5\n',
        r"provider 'a', field 'name'",
    ),
    "not a table": ("[providers]\na = 3\n", r"provider 'a': expected a \[providers.a\] table"),
    "no providers": ("", r"has no providers"),
    "stray key": ('title = "x"\n[providers.a]\n', r"unknown top-level key\(s\) title"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_load_providers_errors_name_the_file_provider_and_field(tmp_path, monkeypatch, case: str) -> None:
    monkeypatch.delenv("MODELARB_TEST_SURELY_UNSET", raising=False)
    text, pattern = BAD_FILES[case]
    path = write(tmp_path, text)
    with pytest.raises(ServiceError, match=pattern) as raised:
        load_providers(path)
    assert str(path) in str(raised.value)


def test_load_providers_missing_file(tmp_path) -> None:
    with pytest.raises(ServiceError, match=r"providers file .*nope.toml not found"):
        load_providers(tmp_path / "nope.toml")


def test_client_refuses_to_start_when_the_key_variable_went_away(monkeypatch) -> None:
    monkeypatch.setenv("MODELARB_TEST_GONE_KEY", "k")
    cfg = config("http://127.0.0.1:9/v1", api_key_env="MODELARB_TEST_GONE_KEY")
    monkeypatch.delenv("MODELARB_TEST_GONE_KEY")
    with pytest.raises(ServiceError, match="MODELARB_TEST_GONE_KEY is unset"):
        ProviderClient(cfg)


def test_metadata_is_sent_only_when_the_provider_config_asks(provider_server) -> None:
    url, seen = provider_server
    with ProviderClient(config(f"{url}/ok/v1")) as client:
        assert client.call([{"role": "user", "content": "x"}], max_tokens=5, call_id="m0", metadata={"task": "1"}).ok
    _, _, body = next(r for r in seen.requests if r[1].get("Idempotency-Key") == "m0")
    assert "metadata" not in body


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_the_token_limit_is_sent_under_the_configured_field(provider_server, field: str) -> None:
    url, seen = provider_server
    with ProviderClient(config(f"{url}/ok/v1", max_tokens_field=field)) as client:
        assert client.call([{"role": "user", "content": "x"}], max_tokens=7, call_id=f"f-{field}", metadata=None).ok
    _, _, body = next(r for r in seen.requests if r[1].get("Idempotency-Key") == f"f-{field}")
    assert body[field] == 7
    assert ({"max_tokens", "max_completion_tokens"} & set(body)) == {field}


def test_a_failure_to_connect_is_not_billed_but_a_timeout_may_be(provider_server) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with ProviderClient(config(f"http://127.0.0.1:{port}/v1")) as client:
        refused = client.call([{"role": "user", "content": "x"}], max_tokens=5, call_id="r", metadata=None)
    assert not refused.ok and not refused.usage_missing
    slow = call(provider_server, "slow", timeout_s=0.3)
    assert not slow.ok and slow.usage_missing  # the provider may finish and bill it: booked at the worst case
