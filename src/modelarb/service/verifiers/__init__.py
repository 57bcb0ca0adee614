"""Verifiers: does an attempt's reply solve the customer's task? One registry of kinds, one sandbox.

A task carries a verifier spec, a JSON object with a `kind`: `check_spec` validates and normalises it
when the task is submitted; `verify` judges each attempt's reply with it. `verify` never raises for
anything a candidate does: a crash, a timeout or a limit hit is a `Verdict(False, reason)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from modelarb.errors import ServiceError
from modelarb.service.verifiers import command, exact, python_tests, replay
from modelarb.service.verifiers.base import MAX_REPLY_CHARS, Kind, Verdict, VerifierContext
from modelarb.service.verifiers.sandbox import SandboxResult, run_sandboxed, sandbox_kind

_REGISTRY: dict[str, Kind] = {kind.name: kind for kind in (exact.KIND, python_tests.KIND, command.KIND, replay.KIND)}
KINDS: tuple[str, ...] = tuple(_REGISTRY)

__all__ = [
    "KINDS",
    "MAX_REPLY_CHARS",
    "SandboxResult",
    "Verdict",
    "VerifierContext",
    "check_spec",
    "run_sandboxed",
    "sandbox_kind",
    "verify",
]


def check_spec(spec: object, commands: Mapping[str, Sequence[str]]) -> dict[str, object]:
    """The normalised spec (defaults filled in), or ServiceError saying what is wrong with it."""
    if not isinstance(spec, Mapping) or not all(isinstance(key, str) for key in spec):
        raise ServiceError('a verifier spec must be a JSON object such as {"kind": "exact", "expected": "42"}')
    kind = spec.get("kind")
    if not isinstance(kind, str) or kind not in _REGISTRY:
        raise ServiceError(f"unknown verifier kind {kind!r}: use one of {', '.join(KINDS)}")
    fields = {name: value for name, value in spec.items() if name != "kind"}
    return {"kind": kind, **_REGISTRY[kind].check(fields, commands)}


def verify(spec: dict[str, object], reply: str, context: VerifierContext) -> Verdict:
    """Judge one attempt's reply by `spec` (as `check_spec` returned it) in `context`."""
    try:
        normalised = check_spec(spec, context.commands)
    except ServiceError as error:
        return Verdict(False, f"the verifier spec is no longer valid: {error}")
    if len(reply) > MAX_REPLY_CHARS:
        return Verdict(False, f"the reply is {len(reply)} characters long: the limit is {MAX_REPLY_CHARS}")
    kind = _REGISTRY[str(normalised["kind"])]
    return kind.run({name: value for name, value in normalised.items() if name != "kind"}, reply, context)
