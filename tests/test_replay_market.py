"""The replay market over real HTTP: recorded attempts drawn without replacement, billed at their recorded cost."""

from __future__ import annotations

import re
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

from modelarb.cli.replay import replay_app, replay_key
from modelarb.data.outcomes import Outcomes, from_cells
from modelarb.errors import DataError, ServiceError
from modelarb.service.replay.market import (
    ReplayPrices,
    create_replay_app,
    key_from_text,
    replay_providers_toml,
    tokens_for_cost,
)
from modelarb.service.replay.signing import read_signed
from servers import serve_in_thread, served

KEY = b"replay-test-key"
PRICES = {"cheap": (Decimal("0.25"), Decimal("2")), "strong": (Decimal(1), Decimal(1))}
RECORDED = re.compile(r"recorded attempt (\d+) of (\d+)")


def _market() -> Outcomes:
    rng = np.random.default_rng(7)
    cells = {
        "cheap": {
            "inst-a": (rng.random(12) < 0.5, 0.0123),
            "inst-b": (np.zeros(5, dtype=bool), 0.0021),
            "inst-c": (np.ones(4, dtype=bool), 0.0400),
        },
        "strong": {
            "inst-a": (np.array([True, False, True]), 0.0507),
            "inst-b": (rng.random(9) < 0.7, 0.0333),
            "inst-c": (np.ones(2, dtype=bool), 0.0912),
        },
    }
    return from_cells(cells, ["cheap", "strong"], "USD", "synthetic")


MARKET = _market()


@pytest.fixture(scope="module")
def market_url() -> Iterator[str]:
    with served(create_replay_app(MARKET, KEY, PRICES, seed=3)) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def client(market_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{market_url}/v1", api_key="any-key", max_retries=0, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def http(market_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=market_url, timeout=10) as http:
        yield http


def _ask(http: httpx.Client, model: str, instance: str, task: str = "t", attempt: int = 0, **extra: Any) -> Any:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "fix the bug"}],
        "metadata": {"instance": instance, "task": task, "attempt": str(attempt)},
        **extra,
    }
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def _cell(instance: str, provider: str) -> tuple[int, int, int]:
    row, column = list(MARKET.instances).index(instance), MARKET.providers.index(provider)
    return row, column, int(MARKET.n[row, column])


@given(
    cost=st.decimals(min_value=0, max_value=10**6, places=3),
    prompt=st.integers(0, 10**5),
    input_price=st.decimals(min_value="0.001", max_value=100, places=3),
    output_price=st.decimals(min_value="0.001", max_value=100, places=3),
)
def test_tokens_cost_the_recorded_cost_to_one_tokens_price(
    cost: Decimal, prompt: int, input_price: Decimal, output_price: Decimal
) -> None:
    billed_prompt, completion = tokens_for_cost(cost, prompt, input_price, output_price)
    bill = billed_prompt * input_price + completion * output_price
    assert 0 <= billed_prompt <= prompt and completion >= 0
    if billed_prompt < prompt:
        assert completion == 0 and abs(bill - cost) <= input_price / 2
    else:
        assert abs(bill - cost) <= output_price / 2


def test_models_are_the_providers(client: openai.OpenAI) -> None:
    assert [model.id for model in client.models.list()] == ["cheap", "strong"]
    assert client.models.retrieve("strong").id == "strong"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nobody")


def test_openai_client_gets_a_signed_attempt_billed_at_the_recorded_cost(client: openai.OpenAI) -> None:
    for provider, (input_price, output_price) in PRICES.items():
        for instance in MARKET.instances.tolist():
            row, column, _ = _cell(instance, provider)
            reply = client.chat.completions.create(
                model=provider,
                messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "fix it ✓"}],
                max_tokens=10**6,
                metadata={"instance": instance, "task": "task-1", "attempt": "0"},
            )
            assert reply.object == "chat.completion" and reply.model == provider and reply.id
            choice = reply.choices[0]
            assert choice.finish_reason == "stop" and choice.message.role == "assistant"
            usage = reply.usage
            assert usage is not None
            assert usage.prompt_tokens == len(b"be brief") + len("fix it ✓".encode())
            assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
            bill = usage.prompt_tokens * input_price + usage.completion_tokens * output_price
            recorded = Decimal(str(MARKET.cost[row, column])) * 1_000_000
            assert abs(bill - recorded) <= output_price
            outcome = read_signed(KEY, choice.message.content or "")
            assert outcome is not None
            assert (outcome.instance, outcome.provider, outcome.attempt) == (instance, provider, 0)
            assert read_signed(b"another key", choice.message.content or "") is None


def test_a_task_draws_every_recorded_attempt_once_then_cycles(http: httpx.Client) -> None:
    for provider in MARKET.providers:
        for instance in MARKET.instances.tolist():
            row, column, n = _cell(instance, provider)
            recorded, solved = [], 0
            for attempt in range(2 * n):
                content = _ask(http, provider, instance, "task-cover", attempt)["choices"][0]["message"]["content"]
                outcome = read_signed(KEY, content)
                assert outcome is not None and outcome.attempt == attempt
                match = RECORDED.search(content)
                assert match is not None and int(match.group(2)) == n
                recorded.append(int(match.group(1)) - 1)
                if attempt < n:
                    solved += outcome.solved
                    assert outcome.solved == bool(MARKET.attempt_sequence(row, column)[recorded[-1]])
            assert sorted(recorded[:n]) == list(range(n)) and recorded[n:] == recorded[:n]
            assert solved == MARKET.s[row, column]


def _order(http: httpx.Client, task: str) -> list[int]:
    _, _, n = _cell("inst-a", "cheap")
    contents = [_ask(http, "cheap", "inst-a", task, j)["choices"][0]["message"]["content"] for j in range(n)]
    return [int(RECORDED.search(text).group(1)) for text in contents]  # type: ignore[union-attr]


def test_draws_are_stateless_and_differ_between_tasks_and_seeds(http: httpx.Client) -> None:
    first = _order(http, "task-x")
    assert _order(http, "task-x") == first
    assert _order(http, "task-y") != first
    for seed, same in ((3, True), (4, False)):
        with served(create_replay_app(MARKET, KEY, PRICES, seed=seed)) as url, httpx.Client(base_url=url) as other:
            assert (_order(other, "task-x") == first) is same


def test_max_tokens_cuts_the_reply_and_an_attempt_cut_short_never_solves(http: httpx.Client) -> None:
    full = _ask(http, "strong", "inst-c", max_tokens=10**6)
    assert full["choices"][0]["finish_reason"] == "stop"
    assert read_signed(KEY, full["choices"][0]["message"]["content"]).solved
    needed = full["usage"]["completion_tokens"]
    for limit in ("max_tokens", "max_completion_tokens"):
        cut = _ask(http, "strong", "inst-c", **{limit: needed - 1})
        assert cut["choices"][0]["finish_reason"] == "length"
        assert cut["usage"]["completion_tokens"] == needed - 1
        outcome = read_signed(KEY, cut["choices"][0]["message"]["content"])
        assert outcome is not None and not outcome.solved
    exact = _ask(http, "strong", "inst-c", max_tokens=needed)
    assert exact["choices"][0]["finish_reason"] == "stop"


def test_a_long_prompt_is_cut_to_the_recorded_cost(http: httpx.Client) -> None:
    reply = _ask(http, "cheap", "inst-b", messages=[{"role": "user", "content": "x" * 20_000}])
    usage = reply["usage"]
    assert usage["completion_tokens"] == 0
    assert abs(usage["prompt_tokens"] * Decimal("0.25") - Decimal("2100")) <= Decimal("0.25")


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"model": "nobody", "metadata": {"instance": "inst-a"}}, 404, "nobody"),
        ({"model": "cheap"}, 400, "metadata.instance"),
        ({"model": "cheap", "metadata": {"instance": "inst-z"}}, 400, "inst-z"),
        ({"model": "cheap", "metadata": {"instance": "inst-a", "attempt": "-1"}}, 400, "attempt"),
        ({"model": "cheap", "metadata": {"instance": "inst-a", "attempt": "²"}}, 400, "attempt"),
        ({"model": "cheap", "metadata": {"instance": None}}, 400, "metadata"),
        ({"model": "cheap", "metadata": {"instance": "inst-a"}, "max_tokens": 0}, 400, "max_tokens"),
        (
            {
                "model": "cheap",
                "metadata": {"instance": "inst-a"},
                "stream": True,
                "stream_options": {"include_usage": 2},
            },
            400,
            "stream_options",
        ),
        ({"model": "cheap", "metadata": {"instance": "inst-a"}, "messages": []}, 400, "messages"),
        ({"model": "cheap", "metadata": {"instance": "inst-a"}, "messages": "hi"}, 400, "messages"),
    ],
)
def test_bad_requests_get_an_openai_error(http: httpx.Client, body: dict[str, Any], status: int, needle: str) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], **body}
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == status
    assert needle in response.json()["error"]["message"]


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b""])
def test_malformed_bodies_are_400(http: httpx.Client, content: bytes) -> None:
    response = http.post("/v1/chat/completions", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["message"]


def test_openai_client_sees_errors_as_its_exceptions(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="nobody"):
        client.chat.completions.create(model="nobody", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match=r"metadata\.instance"):
        client.chat.completions.create(model="cheap", messages=[{"role": "user", "content": "hi"}])


def test_a_market_without_attempt_sequences_replays_its_counts() -> None:
    counts = Outcomes(
        instances=np.array(["i1", "i2"]),
        providers=("p",),
        n=np.array([[6], [3]]),
        s=np.array([[4], [0]]),
        cost=np.array([[0.01], [0.02]]),
    )
    with served(create_replay_app(counts, KEY)) as base_url, httpx.Client(base_url=base_url, timeout=10) as http:
        for instance, n, s in (("i1", 6, 4), ("i2", 3, 0)):
            replies = [_ask(http, "p", instance, "task", j) for j in range(n)]
            outcomes = [read_signed(KEY, r["choices"][0]["message"]["content"]) for r in replies]
            assert sum(o.solved for o in outcomes if o is not None) == s
            assert {r["usage"]["prompt_tokens"] + r["usage"]["completion_tokens"] for r in replies} == {
                10_000 if instance == "i1" else 20_000
            }


def test_prices_and_keys_are_checked() -> None:
    with pytest.raises(ServiceError, match="unknown provider"):
        create_replay_app(MARKET, KEY, {"other": (Decimal(1), Decimal(1))})
    with pytest.raises(ServiceError, match="output price"):
        create_replay_app(MARKET, KEY, {"cheap": (Decimal(1), Decimal(0))})
    with pytest.raises(ServiceError, match="empty"):
        create_replay_app(MARKET, b"")
    assert ReplayPrices.book(["a", "b"], {"b": (Decimal(2), Decimal(3))}).by_provider == {
        "a": (Decimal(1), Decimal(1)),
        "b": (Decimal(2), Decimal(3)),
    }
    assert key_from_text("00ff\n") == b"\x00\xff"
    assert key_from_text("not hex") == b"not hex"
    with pytest.raises(ServiceError):
        key_from_text("  \n")


def test_providers_file_points_the_broker_at_the_market() -> None:
    text = replay_providers_toml(PRICES, "http://127.0.0.1:8090", ["cheap", "strong"], 2_000_000)
    providers = tomllib.loads(text)["providers"]
    assert providers["cheap"] == {
        "base_url": "http://127.0.0.1:8090/v1",
        "model": "cheap",
        "input_price": 0.25,
        "output_price": 2.0,
        "max_tokens": 2_000_000,
        "timeout_s": 30.0,
        "concurrency": 64,
        "send_metadata": True,
    }
    assert providers["strong"]["input_price"] == 1.0 and set(providers) == {"cheap", "strong"}
    odd = tomllib.loads(replay_providers_toml(None, "http://h:1/v1/", ["a.b"], 5, api_key_env="K"))
    assert odd["providers"]["a.b"]["base_url"] == "http://h:1/v1" and odd["providers"]["a.b"]["api_key_env"] == "K"


def test_serve_in_thread_starts_and_stops() -> None:
    base_url, stop = serve_in_thread(create_replay_app(MARKET, KEY))
    assert httpx.get(f"{base_url}/v1/models", timeout=5).status_code == 200
    stop()
    stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/v1/models", timeout=5)


def test_cli_serve_help_and_a_bad_market_is_a_modelarb_error(tmp_path: Path) -> None:
    runner = CliRunner()
    group = runner.invoke(replay_app, ["--help"])
    assert group.exit_code == 0 and "serve" in group.output
    result = runner.invoke(replay_app, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--data", "--providers", "--port", "--key-file", "--seed", "--providers-file-out"):
        assert option in result.output
    missing = runner.invoke(replay_app, ["serve", "--data", str(tmp_path / "nowhere"), "--port", "0"])
    assert isinstance(missing.exception, DataError) and "nowhere" in str(missing.exception)


def test_replay_key_from_file_env_or_new(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELARB_REPLAY_KEY", raising=False)
    (tmp_path / "hex.key").write_text("0a0b\n")
    assert replay_key(tmp_path / "hex.key") == b"\n\x0b"
    monkeypatch.setenv("MODELARB_REPLAY_KEY", "shared secret")
    assert replay_key(None) == b"shared secret"
    fresh = tmp_path / "fresh.key"
    key = replay_key(fresh)
    assert len(key) == 32 and replay_key(fresh) == key
    monkeypatch.delenv("MODELARB_REPLAY_KEY")
    generated = replay_key(None)
    assert len(generated) == 32


@pytest.mark.data
def test_paper_market_serves_signed_attempts_at_recorded_cost(paper_data: Path) -> None:
    from modelarb.data.market import load_market

    outcomes, _ = load_market(paper_data / "swebench", ["gpt5mini", "deepseek"])
    with served(create_replay_app(outcomes, KEY)) as base_url:
        client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="x", max_retries=0, timeout=10)
        for row in (0, 1, outcomes.n_instances - 1):
            instance = str(outcomes.instances[row])
            for column, provider in enumerate(outcomes.providers):
                n, s = int(outcomes.n[row, column]), int(outcomes.s[row, column])
                solved = 0
                for attempt in range(n):
                    reply = client.chat.completions.create(
                        model=provider,
                        messages=[{"role": "user", "content": f"solve {instance}"}],
                        metadata={"instance": instance, "task": "paper", "attempt": str(attempt)},
                    )
                    outcome = read_signed(KEY, reply.choices[0].message.content or "")
                    assert outcome is not None and (outcome.instance, outcome.provider) == (instance, provider)
                    solved += outcome.solved
                    assert reply.usage is not None
                    recorded = Decimal(str(outcomes.cost[row, column])) * 1_000_000
                    assert abs(reply.usage.total_tokens - recorded) <= 1
                assert solved == s
        client.close()
