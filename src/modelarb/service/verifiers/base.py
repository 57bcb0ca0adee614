"""What every verifier kind shares: the verdict, the context it runs in, and spec-field checking."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from modelarb.errors import ServiceError

MAX_REPLY_CHARS = 1_000_000
"""Longer replies are not verified (and not scanned): no honest answer needs a megabyte."""


@dataclass(frozen=True)
class Verdict:
    """Whether an attempt's reply is verified, and why (or why not)."""

    verified: bool
    reason: str


@dataclass(frozen=True)
class VerifierContext:
    """What the broker knows when it verifies one attempt.

    `commands` are the operator's named commands (argv lists) the `command` kind may run;
    `readonly_paths` are host paths those commands need to see inside the sandbox (e.g. a checker's
    installation). The limits bound every sandboxed run.
    """

    replay_key: bytes | None
    commands: Mapping[str, Sequence[str]]
    instance: str | None
    provider: str
    timeout_s: float = 60
    memory_mb: int = 1024
    max_processes: int = 64
    readonly_paths: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Kind:
    """One verifier kind: `check` normalises a spec's fields (kind key excluded), `run` judges a reply."""

    name: str
    check: Callable[[Mapping[str, object], Mapping[str, Sequence[str]]], dict[str, object]]
    run: Callable[[dict[str, object], str, VerifierContext], Verdict]


def expect_fields(spec: Mapping[str, object], kind: str, required: Sequence[str], optional: Sequence[str]) -> None:
    """Raise ServiceError when `spec` (kind key excluded) lacks a required field or has an unknown one."""
    known = set(required) | set(optional)
    unknown = sorted(name for name in spec if name not in known)
    if unknown:
        allowed = ", ".join(sorted(known)) or "none"
        raise ServiceError(f"the {kind} verifier has no field {', '.join(unknown)}: its fields are {allowed}")
    missing = [name for name in required if name not in spec]
    if missing:
        raise ServiceError(f"the {kind} verifier needs the field {', '.join(missing)}")


def text_field(spec: Mapping[str, object], kind: str, name: str, max_chars: int) -> str:
    """The string field `name`, at most `max_chars` long."""
    value = spec[name]
    if not isinstance(value, str):
        raise ServiceError(f"the {kind} verifier's {name} must be a string, not {type(value).__name__}")
    if len(value) > max_chars:
        raise ServiceError(f"the {kind} verifier's {name} is {len(value)} characters long: the limit is {max_chars}")
    return value


def bool_field(spec: Mapping[str, object], kind: str, name: str, default: bool) -> bool:
    """The boolean field `name`, or `default` when absent."""
    value = spec.get(name, default)
    if not isinstance(value, bool):
        raise ServiceError(f"the {kind} verifier's {name} must be true or false, not {value!r}")
    return value


def seconds_field(spec: Mapping[str, object], kind: str, name: str, maximum: float) -> float | None:
    """The positive number of seconds `name`, at most `maximum`, or None when absent."""
    if name not in spec:
        return None
    value = spec[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= maximum:
        raise ServiceError(f"the {kind} verifier's {name} must be a number of seconds in (0, {maximum:g}]")
    return float(value)
