"""The providers file: one validated `ProviderConfig` per provider a plan buys from.

A provider's prices come from the file or, when absent, from genai-prices' bundled price
snapshot (offline: the package only fetches prices if asked to with `UpdatePrices`, which
the broker never does). Every problem with the file is one `ServiceError` naming the file,
the provider and the field.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from modelarb.errors import ServiceError

MILLION = 1_000_000


class ProviderConfig(BaseModel):
    """How to call one OpenAI-compatible provider, what it costs, and how hard to push it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="The provider's name as the plan spells it (the providers-table key).")
    base_url: str = Field(
        description="The provider's OpenAI-compatible API root, http or https, e.g. https://api.openai.com/v1; "
        "requests go to {base_url}/chat/completions."
    )
    model: str = Field(min_length=1, description="The model name sent in every request.")
    api_key_env: str | None = Field(
        default=None,
        min_length=1,
        description="The NAME of the environment variable holding the API key (never the key itself); "
        "unset means requests carry no Authorization header.",
    )
    input_price: Decimal | None = Field(
        default=None,
        ge=0,
        description="Price per million prompt tokens in the plan's cost unit; looked up by model name "
        "(genai-prices, USD) when absent.",
    )
    output_price: Decimal | None = Field(
        default=None,
        ge=0,
        description="Price per million completion tokens in the plan's cost unit; looked up by model name "
        "(genai-prices, USD) when absent.",
    )
    max_tokens: int = Field(gt=0, description="The most completion tokens one request may ask for.")
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = Field(
        default="max_tokens",
        description="The request field that carries the completion-token limit: `max_tokens`, or "
        "`max_completion_tokens` for reasoning models that refuse `max_tokens` (OpenAI's o-series and GPT-5).",
    )
    timeout_s: float = Field(default=120.0, gt=0, description="Seconds allowed to connect, send, and read a reply.")
    concurrency: int = Field(default=8, gt=0, description="The most requests in flight to this provider at once.")
    max_retries: int = Field(default=3, ge=0, description="Retries of a retryable failure before giving up.")
    backoff_s: float = Field(default=0.5, ge=0, description="Base of the exponential backoff between retries.")
    max_backoff_s: float = Field(default=30.0, gt=0, description="Cap on one backoff delay, in seconds.")
    attempt: Literal["chat", "agent"] = Field(
        default="chat",
        description="How an attempt is made: `chat`, one completion; `agent`, a run of the broker's agent harness "
        "whose model calls go through the metering gateway to this provider.",
    )
    send_metadata: bool = Field(
        default=False,
        description="Send the task id, attempt number and instance as the request's `metadata` (the replay market "
        "needs them; OpenAI accepts `metadata` only for stored completions, so it is off by default).",
    )

    _price_source: str = PrivateAttr(default="providers file")

    @field_validator("input_price", "output_price", mode="before")
    @classmethod
    def _price_from_number(cls, value: Any) -> Any:
        # TOML floats go through their decimal text, so 0.15 is 0.15 and not 0.1499999...
        if isinstance(value, bool):
            raise ValueError("a price is a number, not true/false")
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError("a price must be finite")
            return Decimal(repr(value))
        return value

    @field_validator("input_price", "output_price")
    @classmethod
    def _finite_price(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and not value.is_finite():
            raise ValueError("a price must be finite")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{value!r} is not an http(s) URL such as https://api.openai.com/v1")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _key_and_prices(self) -> ProviderConfig:
        if self.api_key_env is not None and not os.environ.get(self.api_key_env):
            raise ValueError(
                f"environment variable {self.api_key_env} (api_key_env) is unset or empty: "
                "export the provider's API key in it, or remove api_key_env"
            )
        if self.input_price is None or self.output_price is None:
            looked_up = catalogue_prices(self.model, self.base_url)
            if looked_up is None:
                raise ValueError(
                    f"no price known for model {self.model!r}: set input_price and output_price "
                    "(per million tokens) for this provider"
                )
            input_price, output_price, source = looked_up
            if self.input_price is None:
                self.input_price = input_price
            if self.output_price is None:
                self.output_price = output_price
            self._price_source = source
        return self

    @property
    def prices(self) -> tuple[Decimal, Decimal]:
        """(input, output) price per million tokens; both are always known after validation."""
        assert self.input_price is not None and self.output_price is not None
        return self.input_price, self.output_price

    @property
    def price_source(self) -> str:
        """Where the prices came from: the providers file or the genai-prices catalogue entry."""
        return self._price_source

    def api_key(self) -> str | None:
        """The API key from the environment, or None when the provider takes none."""
        if self.api_key_env is None:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ServiceError(
                f"provider {self.name!r}: environment variable {self.api_key_env} is unset or empty; "
                "export the provider's API key in it"
            )
        return key


def catalogue_prices(model: str, base_url: str | None = None) -> tuple[Decimal, Decimal, str] | None:
    """(input, output) USD per million tokens for `model` from genai-prices' bundled snapshot, or None.

    The provider is matched by API URL when genai-prices knows it, else by model name alone.
    Tiered prices are taken at one million tokens, i.e. the upper tier (an upper bound).
    """
    from genai_prices import Usage, calc_price

    urls: list[str | None] = [base_url, None] if base_url else [None]
    for url in urls:
        try:
            per_input = calc_price(Usage(input_tokens=MILLION, output_tokens=0), model, provider_api_url=url)
            per_output = calc_price(Usage(input_tokens=0, output_tokens=MILLION), model, provider_api_url=url)
        except LookupError:
            continue
        except Exception:  # a broken or unexpected catalogue is no price, never a crash
            return None
        source = f"genai-prices {per_input.provider.id}/{per_input.model.id}"
        return Decimal(per_input.total_price), Decimal(per_output.total_price), source
    return None


def load_providers(path: Path) -> dict[str, ProviderConfig]:
    """Read and validate a providers file (`[providers.NAME]` tables); one ServiceError for any problem."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ServiceError(
            f"providers file {path} not found: create it with one [providers.NAME] table per provider"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ServiceError(f"providers file {path} cannot be read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ServiceError(f"providers file {path} is not valid TOML: {exc}") from exc

    unknown = sorted(set(raw) - {"providers"})
    if unknown:
        raise ServiceError(
            f"providers file {path}: unknown top-level key(s) {', '.join(unknown)}; "
            "only [providers.NAME] tables belong here"
        )
    tables = raw.get("providers")
    if not isinstance(tables, dict) or not tables:
        raise ServiceError(f"providers file {path} has no providers: add one [providers.NAME] table per provider")

    providers: dict[str, ProviderConfig] = {}
    problems: list[str] = []
    for name, table in tables.items():
        if not isinstance(table, dict):
            problems.append(f"provider {name!r}: expected a [providers.{name}] table")
            continue
        if "name" in table and table["name"] != name:
            problems.append(f"provider {name!r}, field 'name': {table['name']!r} differs from the table name")
            continue
        try:
            providers[name] = ProviderConfig.model_validate({**table, "name": name})
        except ValidationError as exc:
            problems.extend(_describe(name, exc))
    if problems:
        raise ServiceError(f"providers file {path}: " + "; ".join(problems))
    return providers


def check_covers(providers: Mapping[str, ProviderConfig], names: Iterable[str]) -> None:
    """Raise ServiceError unless every provider the plan names has an entry in the providers file."""
    missing = sorted({name for name in names if name not in providers})
    if missing:
        tables = ", ".join(f"[providers.{name}]" for name in missing)
        raise ServiceError(
            f"the plan buys from provider(s) {', '.join(missing)} with no entry in the providers file: add {tables}"
        )


def _describe(name: str, exc: ValidationError) -> list[str]:
    messages = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = f"unknown field (allowed: {', '.join(sorted(ProviderConfig.model_fields))})"
        elif error["type"] == "missing":
            message = "missing; set it"
        where = f"provider {name!r}, field {field!r}" if field else f"provider {name!r}"
        messages.append(f"{where}: {message}")
    return messages
