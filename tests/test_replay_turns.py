"""The replay market for agent harnesses: streamed replies, and recorded attempts served as several turns."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from modelarb.cli.replay import replay_app
from modelarb.data.outcomes import Outcomes, from_cells
from modelarb.errors import ServiceError
from modelarb.service.replay.faults import KINDS, Faults
from modelarb.service.replay.market import ReplayMarket, ReplayPrices, create_replay_app
from modelarb.service.replay.signing import Outcome, read_signed
from servers import served

KEY = b"turns-test-key"
TURNS = 4
PRICES = {
    "cheap": (Decimal("0.25"), Decimal("2")),
    "strong": (Decimal(1), Decimal(1)),
    "dear-input": (Decimal(3), Decimal("0.5")),
}
PROVIDERS = list(PRICES)
TURN_TEXT = re.compile(r"^Replay turn (\d+) of (\d+) by (\S+) on (\S+): keep going\.$")


def _market() -> Outcomes:
    rng = np.random.default_rng(11)
    costs = {"cheap": (0.0123, 0.0021, 0.0400), "strong": (0.0507, 0.0333, 0.0912), "dear-input": (0.0719, 0.0005, 0.2)}
    cells = {
        provider: {
            f"inst-{name}": (rng.random(int(rng.integers(2, 7))) < 0.6, cost)
            for name, cost in zip("abc", costs[provider], strict=True)
        }
        for provider in PROVIDERS
    }
    return from_cells(cells, PROVIDERS, "USD", "synthetic")


MARKET = _market()
INSTANCES: list[str] = MARKET.instances.tolist()


def _recorded_micro(instance: str, provider: str) -> Decimal:
    row, column = INSTANCES.index(instance), MARKET.providers.index(provider)
    return Decimal(str(MARKET.cost[row, column])) * 1_000_000


def _bill(provider: str, usage: dict[str, int]) -> Decimal:
    input_price, output_price = PRICES[provider]
    return usage["prompt_tokens"] * input_price + usage["completion_tokens"] * output_price


def _per_call_bound(provider: str) -> Decimal:
    return max(PRICES[provider]) / 2


@pytest.fixture(scope="module")
def urls() -> Iterator[tuple[str, str]]:
    """(a one-turn market, a TURNS-turn market) over the same data, prices and seed."""
    with (
        served(create_replay_app(MARKET, KEY, PRICES, seed=5)) as single,
        served(create_replay_app(MARKET, KEY, PRICES, seed=5, turns=TURNS)) as multi,
    ):
        yield single, multi


@pytest.fixture(scope="module")
def http(urls: tuple[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as http:
        yield http


@pytest.fixture(scope="module")
def client(urls: tuple[str, str]) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{urls[0]}/v1", api_key="any", max_retries=0, timeout=10) as client:
        yield client


def _body(provider: str, instance: str, attempt: int = 0, turn: int | None = None, **extra: Any) -> dict[str, Any]:
    metadata = {"instance": instance, "task": "task-7", "attempt": str(attempt)}
    if turn is not None:
        metadata["turn"] = str(turn)
    return {"model": provider, "messages": [{"role": "user", "content": "fix the bug"}], "metadata": metadata, **extra}


def _outcome(content: str) -> Outcome:
    outcome = read_signed(KEY, content)
    assert outcome is not None, content
    return outcome


def _turn_text(content: str) -> tuple[str, ...]:
    match = TURN_TEXT.match(content)
    assert match is not None, content
    return match.groups()


def _post(http: httpx.Client, url: str, body: dict[str, Any]) -> Any:
    response = http.post(f"{url}/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def _events(response: httpx.Response) -> list[Any]:
    """The decoded chunks of a streamed response, checking its framing: `data: ...` events, then `[DONE]`."""
    assert response.headers["content-type"].startswith("text/event-stream")
    text = response.text
    assert text.endswith("data: [DONE]\n\n")
    events = text.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    assert all(event.startswith("data: ") for event in events[:-1])
    return [json.loads(event.removeprefix("data: ")) for event in events[:-2]]


# Streaming


@pytest.mark.parametrize("include_usage", [True, False])
def test_openai_client_streams_the_same_reply_and_bill(
    client: openai.OpenAI, http: httpx.Client, urls: tuple[str, str], include_usage: bool
) -> None:
    for provider in PROVIDERS:
        for instance in INSTANCES:
            for attempt in (0, 1):
                body = _body(provider, instance, attempt)
                whole = _post(http, urls[0], body)
                stream = client.chat.completions.create(
                    model=provider,
                    messages=body["messages"],
                    metadata=body["metadata"],
                    stream=True,
                    stream_options={"include_usage": True} if include_usage else openai.omit,
                )
                chunks = list(stream)
                assert {chunk.id for chunk in chunks} == {chunks[0].id} and chunks[0].id.startswith("chatcmpl-")
                assert {(chunk.object, chunk.model) for chunk in chunks} == {("chat.completion.chunk", provider)}
                choices = [chunk.choices[0] for chunk in chunks if chunk.choices]
                assert choices[0].delta.role == "assistant" and choices[0].delta.content == ""
                assert len(choices) >= 4 and all(choice.finish_reason is None for choice in choices[:-1])
                assert choices[-1].finish_reason == "stop" and not choices[-1].delta.content
                content = "".join(choice.delta.content or "" for choice in choices)
                assert content == whole["choices"][0]["message"]["content"]
                outcome = read_signed(KEY, content)
                assert outcome is not None and (outcome.instance, outcome.provider, outcome.attempt) == (
                    instance,
                    provider,
                    attempt,
                )
                if include_usage:
                    assert chunks[-1].choices == [] and chunks[-1].usage is not None
                    assert {k: getattr(chunks[-1].usage, k) for k in whole["usage"]} == whole["usage"]
                    assert all(chunk.usage is None for chunk in chunks[:-1])
                else:
                    assert all(chunk.choices and chunk.usage is None for chunk in chunks)


def test_raw_stream_is_openai_server_sent_chunks(http: httpx.Client, urls: tuple[str, str]) -> None:
    body = _body("cheap", "inst-a", 2)
    whole = _post(http, urls[0], body)
    streamed = http.post(
        f"{urls[0]}/v1/chat/completions", json={**body, "stream": True, "stream_options": {"include_usage": True}}
    )
    assert streamed.status_code == 200
    chunks = _events(streamed)
    assert len({chunk["id"] for chunk in chunks}) == 1 and len({chunk["created"] for chunk in chunks}) == 1
    assert all(chunk["object"] == "chat.completion.chunk" and chunk["model"] == "cheap" for chunk in chunks)
    assert chunks[0]["choices"] == [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
    ]
    middle = [chunk["choices"][0] for chunk in chunks[1:-2]]
    assert 1 <= len(middle) <= 4 and all(set(choice["delta"]) == {"content"} for choice in middle)
    assert "".join(choice["delta"]["content"] for choice in middle) == whole["choices"][0]["message"]["content"]
    assert chunks[-2]["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == whole["usage"]
    assert all(chunk["usage"] is None for chunk in chunks[:-1])
    plain = _events(http.post(f"{urls[0]}/v1/chat/completions", json={**body, "stream": True}))
    assert all(chunk["choices"] and "usage" not in chunk for chunk in plain) and len(plain) == len(chunks) - 1


def test_streaming_cuts_at_max_tokens_like_the_whole_reply(
    client: openai.OpenAI, http: httpx.Client, urls: tuple[str, str]
) -> None:
    body = _body("strong", "inst-c")
    needed = _post(http, urls[0], body)["usage"]["completion_tokens"]
    for limit in ("max_tokens", "max_completion_tokens"):
        whole = _post(http, urls[0], {**body, limit: needed - 1})
        chunks = list(
            client.chat.completions.create(
                model="strong",
                messages=body["messages"],
                metadata=body["metadata"],
                stream=True,
                stream_options={"include_usage": True},
                **{limit: needed - 1},
            )
        )
        content = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
        assert content == whole["choices"][0]["message"]["content"]
        finish = [
            chunk.choices[0].finish_reason for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason
        ]
        assert finish == ["length"]
        usage = chunks[-1].usage
        assert usage is not None and usage.completion_tokens == needed - 1
        outcome = read_signed(KEY, content)
        assert outcome is not None and not outcome.solved


FAULT_KINDS = [kind for kind in KINDS if kind != "timeout"]


@pytest.fixture(scope="module")
def fault_url() -> Iterator[str]:
    """A market whose every provider meets one fault kind on every call: the provider named after the kind."""
    cells = {kind: {"inst-a": (np.array([True, True]), 0.0123)} for kind in FAULT_KINDS}
    outcomes = from_cells(cells, FAULT_KINDS, "USD", "synthetic")
    faults = {kind: Faults({kind: 1.0}, slow_s=0.2, retry_after_s=0.01) for kind in FAULT_KINDS}
    with served(create_replay_app(outcomes, KEY, faults=faults)) as url:
        yield url


def test_faults_apply_to_streamed_calls(fault_url: str) -> None:
    body = {**_body("?", "inst-a"), "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 20_000}
    good_usage = {"prompt_tokens": 11, "completion_tokens": 12_289, "total_tokens": 12_300}
    with httpx.Client(base_url=fault_url, timeout=10) as http:
        for kind, status in (("500", 500), ("429", 429), ("429-bare", 429)):
            response = http.post("/v1/chat/completions", json={**body, "model": kind})
            assert response.status_code == status and response.json()["error"]["message"]
            assert ("retry-after-ms" in response.headers) is (kind == "429")
        malformed = http.post("/v1/chat/completions", json={**body, "model": "malformed"})
        assert malformed.status_code == 200 and malformed.text.startswith("data: {")
        with pytest.raises(json.JSONDecodeError):
            json.loads(malformed.text.removeprefix("data: "))
        with pytest.raises(httpx.RemoteProtocolError):
            http.post("/v1/chat/completions", json={**body, "model": "drop"})
        started = time.monotonic()
        slow = _events(http.post("/v1/chat/completions", json={**body, "model": "slow"}))
        assert time.monotonic() - started >= 0.2 and slow[-1]["usage"] == good_usage
        missing = _events(http.post("/v1/chat/completions", json={**body, "model": "usage-missing"}))
        assert all(chunk["choices"] for chunk in missing) and missing[-1]["choices"][0]["finish_reason"] == "stop"
        zero = _events(http.post("/v1/chat/completions", json={**body, "model": "usage-zero"}))
        assert zero[-1]["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        lie = _events(http.post("/v1/chat/completions", json={**body, "model": "usage-lie"}))[-1]["usage"]
        assert lie["completion_tokens"] == 10 * 20_000 + 10_000 and lie["total_tokens"] == 11 + lie["completion_tokens"]
    with openai.OpenAI(base_url=f"{fault_url}/v1", api_key="any", max_retries=0, timeout=10) as client:
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(
                model="500", messages=body["messages"], metadata=body["metadata"], stream=True
            )
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(
                model="429", messages=body["messages"], metadata=body["metadata"], stream=True
            )
        with pytest.raises((httpx.RemoteProtocolError, openai.APIConnectionError)):  # as the client version wraps it
            list(
                client.chat.completions.create(
                    model="drop", messages=body["messages"], stream=True, metadata=body["metadata"]
                )
            )


def test_timeout_fault_delays_the_first_chunk() -> None:
    outcomes = from_cells({"p": {"i": (np.array([True]), 0.001)}}, ["p"], "USD", "synthetic")
    app = create_replay_app(outcomes, KEY, faults={"p": Faults({"timeout": 1.0}, hang_s=0.3)})
    with served(app) as url, httpx.Client(base_url=url, timeout=0.1) as http, pytest.raises(httpx.ReadTimeout):
        http.post("/v1/chat/completions", json={**_body("p", "i"), "stream": True})


# Multi-turn attempts


def _conversation(http: httpx.Client, url: str, provider: str, instance: str, attempt: int, calls: int) -> list[Any]:
    """The replies to `calls` turns of one attempt, the prompt growing with the replies as a harness's does."""
    messages = [{"role": "user", "content": f"solve {instance}"}]
    replies = []
    for turn in range(calls):
        reply = _post(http, url, {**_body(provider, instance, attempt, turn), "messages": messages})
        replies.append(reply)
        messages = [*messages, reply["choices"][0]["message"], {"role": "user", "content": "observation: ok"}]
    return replies


def test_turns_together_bill_the_recorded_cost_and_only_the_last_carries_the_outcome(
    http: httpx.Client, urls: tuple[str, str]
) -> None:
    single, multi = urls
    for provider in PROVIDERS:
        for instance in INSTANCES:
            for attempt in range(3):
                replies = _conversation(http, multi, provider, instance, attempt, TURNS)
                bills = [_bill(provider, reply["usage"]) for reply in replies]
                recorded = _recorded_micro(instance, provider)
                assert abs(sum(bills) - recorded) <= TURNS * _per_call_bound(provider)
                for bill in bills[:-1]:
                    assert abs(bill - recorded / TURNS) <= _per_call_bound(provider)
                for turn, reply in enumerate(replies[:-1]):
                    content = reply["choices"][0]["message"]["content"]
                    assert _turn_text(content) == (str(turn + 1), str(TURNS), provider, instance)
                    assert read_signed(KEY, content) is None and "replay-outcome" not in content
                final = replies[-1]["choices"][0]["message"]["content"]
                whole = _post(http, single, _body(provider, instance, attempt))["choices"][0]["message"]["content"]
                assert final == whole and _outcome(final).attempt == attempt


@given(
    cost=st.decimals(min_value=0, max_value=10**6, places=4),
    turns=st.integers(1, 12),
    prompts=st.lists(st.integers(0, 5000), min_size=14, max_size=14),
    input_price=st.decimals(min_value="0.01", max_value=50, places=2),
    output_price=st.decimals(min_value="0.01", max_value=50, places=2),
)
def test_turns_bill_the_recorded_cost_within_the_stated_bound(
    cost: Decimal, turns: int, prompts: list[int], input_price: Decimal, output_price: Decimal
) -> None:
    outcomes = from_cells({"p": {"i": (np.array([True, False]), float(cost / 10**6))}}, ["p"], "USD", "synthetic")
    prices = ReplayPrices.book(["p"], {"p": (input_price, output_price)})
    market = ReplayMarket(outcomes, KEY, prices, seed=1, turns=turns)
    recorded = Decimal(str(outcomes.cost[0, 0])) * 1_000_000
    replies = [market.reply("p", "i", "t", 0, prompts[turn], None, turn) for turn in range(turns + 2)]
    bills = [reply.prompt_tokens * input_price + reply.completion_tokens * output_price for reply in replies]
    per_call = max(input_price, output_price) / 2
    assert abs(sum(bills[:turns]) - recorded) <= turns * per_call
    assert all(abs(bill - recorded / turns) <= per_call for bill in bills[turns:])
    assert [reply.outcome is not None for reply in replies] == [turn >= turns - 1 for turn in range(turns + 2)]
    assert replies[turns - 1].content == replies[turns].content == replies[turns + 1].content


def test_turns_past_the_last_keep_billing_and_repeat_the_final_reply(http: httpx.Client, urls: tuple[str, str]) -> None:
    replies = _conversation(http, urls[1], "cheap", "inst-c", 0, TURNS + 3)
    share = _recorded_micro("inst-c", "cheap") / TURNS
    final = replies[TURNS - 1]["choices"][0]["message"]["content"]
    for reply in replies[TURNS:]:
        assert reply["choices"][0]["message"]["content"] == final
        assert abs(_bill("cheap", reply["usage"]) - share) <= _per_call_bound("cheap")
    total = sum(_bill("cheap", reply["usage"]) for reply in replies)
    assert total > _recorded_micro("inst-c", "cheap") + 2 * share


def test_max_tokens_cuts_each_turn_and_a_cut_final_turn_is_unsolved(http: httpx.Client, urls: tuple[str, str]) -> None:
    multi = urls[1]
    solved = next(
        attempt
        for attempt in range(6)
        if _outcome(_post(http, multi, _body("strong", "inst-c", attempt))["choices"][0]["message"]["content"]).solved
    )
    early = _post(http, multi, _body("strong", "inst-c", solved, 0))
    needed = early["usage"]["completion_tokens"]
    cut = _post(http, multi, _body("strong", "inst-c", solved, 0, max_tokens=needed - 1))
    assert cut["choices"][0]["finish_reason"] == "length" and cut["usage"]["completion_tokens"] == needed - 1
    assert cut["choices"][0]["message"]["content"] == early["choices"][0]["message"]["content"]
    last = _post(http, multi, _body("strong", "inst-c", solved, TURNS - 1))
    assert _outcome(last["choices"][0]["message"]["content"]).solved
    limit = last["usage"]["completion_tokens"] - 1
    cut_last = _post(http, multi, _body("strong", "inst-c", solved, TURNS - 1, max_completion_tokens=limit))
    assert cut_last["choices"][0]["finish_reason"] == "length" and cut_last["usage"]["completion_tokens"] == limit
    outcome = read_signed(KEY, cut_last["choices"][0]["message"]["content"])
    assert outcome is not None and not outcome.solved


def test_without_a_turn_a_multi_turn_market_behaves_as_a_one_turn_market(
    http: httpx.Client, urls: tuple[str, str]
) -> None:
    single, multi = urls
    for provider in PROVIDERS:
        for attempt in range(3):
            one = _post(http, single, _body(provider, "inst-a", attempt, turn=1))
            other = _post(http, multi, _body(provider, "inst-a", attempt))
            assert one["choices"] == other["choices"] and one["usage"] == other["usage"]
    ignored = _post(http, single, _body("cheap", "inst-a", 0) | {"metadata": {"instance": "inst-a", "turn": "x"}})
    assert read_signed(KEY, ignored["choices"][0]["message"]["content"]) is not None
    for turn in ("x", "-1", "1.5"):
        bad = http.post(
            f"{multi}/v1/chat/completions",
            json=_body("cheap", "inst-a") | {"metadata": {"instance": "inst-a", "turn": turn}},
        )
        assert bad.status_code == 400 and "metadata.turn" in bad.json()["error"]["message"]
    with pytest.raises(ServiceError, match="turns"):
        create_replay_app(MARKET, KEY, turns=0)


def test_turns_stream_too(client: openai.OpenAI, http: httpx.Client, urls: tuple[str, str]) -> None:
    with openai.OpenAI(base_url=f"{urls[1]}/v1", api_key="any", max_retries=0, timeout=10) as multi_client:
        for turn in (0, TURNS - 1):
            body = _body("dear-input", "inst-b", 1, turn)
            whole = _post(http, urls[1], body)
            chunks = list(
                multi_client.chat.completions.create(
                    model="dear-input",
                    messages=body["messages"],
                    metadata=body["metadata"],
                    stream=True,
                    stream_options={"include_usage": True},
                )
            )
            content = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
            assert content == whole["choices"][0]["message"]["content"]
            assert (read_signed(KEY, content) is not None) is (turn == TURNS - 1)
            usage = chunks[-1].usage
            assert usage is not None and usage.completion_tokens == whole["usage"]["completion_tokens"]


# The CLI


def _write_long_table(outcomes: Outcomes, path: Path) -> Path:
    with path.open("w", newline="") as file:
        out = csv.writer(file)
        out.writerow(["instance", "provider", "attempt", "solved", "cost", "cost_unit"])
        for i, instance in enumerate(outcomes.instances.tolist()):
            for p, provider in enumerate(outcomes.providers):
                for k, solved in enumerate(outcomes.attempt_sequence(i, p).tolist()):
                    out.writerow([instance, provider, k, int(solved), repr(float(outcomes.cost[i, p])), outcomes.unit])
    return path


def test_cli_serve_takes_turns(tmp_path: Path) -> None:
    help_text = CliRunner().invoke(replay_app, ["serve", "--help"]).output
    assert "--turns" in help_text
    bad = CliRunner().invoke(replay_app, ["serve", "--turns", "0", "--port", "0"])
    assert bad.exit_code == 2
    data = _write_long_table(MARKET, tmp_path / "market.csv")
    (tmp_path / "replay.key").write_text(KEY.hex() + "\n")
    providers_file = tmp_path / "providers.toml"
    command = [sys.executable, "-m", "modelarb", "replay", "serve", "--data", str(data), "--port", "0"]
    command += ["--turns", "3", "--key-file", str(tmp_path / "replay.key"), "--providers-file-out", str(providers_file)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not providers_file.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert providers_file.exists(), process.communicate()[1] if process.poll() is not None else "no file"
        api = tomllib.loads(providers_file.read_text())["providers"]["cheap"]["base_url"]
        with httpx.Client(timeout=5) as http:
            while True:
                try:
                    http.get(f"{api}/models")
                    break
                except httpx.ConnectError:
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
            contents = [
                _post(http, api.removesuffix("/v1"), _body("cheap", "inst-a", 0, turn))["choices"][0]["message"][
                    "content"
                ]
                for turn in range(3)
            ]
        assert _turn_text(contents[0])[:2] == ("1", "3")
        assert read_signed(KEY, contents[1]) is None and read_signed(KEY, contents[2]) is not None
    finally:
        process.terminate()
        process.wait(10)
