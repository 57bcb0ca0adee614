"""Signed outcomes: how a replay provider tells the `replay` verifier whether an attempt solved its instance.

A replay reply ends with one line `replay-outcome: <instance> <provider> <attempt> <solved> <signature>`,
the signature an HMAC-SHA256 (hex) of the other four fields under a key shared by the replay
market and the broker. A candidate cannot forge a success without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

PREFIX = "replay-outcome:"
_LINE = re.compile(r"^replay-outcome: (\S+) (\S+) (\d+) ([01]) ([0-9a-f]{64})\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Outcome:
    """One recorded attempt's result, as the replay market serves it."""

    instance: str
    provider: str
    attempt: int
    solved: bool


def _signature(key: bytes, outcome: Outcome) -> str:
    message = f"{outcome.instance}\n{outcome.provider}\n{outcome.attempt}\n{int(outcome.solved)}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(key: bytes, outcome: Outcome) -> str:
    """The outcome line a replay reply carries."""
    fields = f"{outcome.instance} {outcome.provider} {outcome.attempt} {int(outcome.solved)}"
    return f"{PREFIX} {fields} {_signature(key, outcome)}"


def read_signed(key: bytes, text: str) -> Outcome | None:
    """The outcome signed in `text` (the last outcome line), or None if there is none or its signature is wrong."""
    matches = list(_LINE.finditer(text))
    if not matches:
        return None
    instance, provider, attempt, solved, signature = matches[-1].groups()
    outcome = Outcome(instance, provider, int(attempt), solved == "1")
    return outcome if hmac.compare_digest(signature, _signature(key, outcome)) else None
