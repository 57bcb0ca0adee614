"""The `exact` kind: the reply, stripped, equals an expected string or fully matches a regex.

A regex comes from the customer, so a match runs in a child interpreter with a time limit: a
catastrophically backtracking pattern costs that child, not the broker.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence

from modelarb.errors import ServiceError
from modelarb.service.verifiers.base import Kind, Verdict, VerifierContext, bool_field, expect_fields, text_field

MAX_EXPECTED_CHARS = 100_000
MAX_PATTERN_CHARS = 10_000
MATCH_TIMEOUT_S = 5.0

_MATCHER = """
import json, re, sys
job = json.load(sys.stdin)
sys.stdout.write("1" if re.fullmatch(job["pattern"], job["text"]) else "0")
"""


def check(spec: Mapping[str, object], commands: Mapping[str, Sequence[str]]) -> dict[str, object]:
    expect_fields(spec, "exact", ["expected"], ["regex"])
    regex = bool_field(spec, "exact", "regex", False)
    expected = text_field(spec, "exact", "expected", MAX_PATTERN_CHARS if regex else MAX_EXPECTED_CHARS)
    if regex:
        try:
            re.compile(expected)
        except re.error as error:
            raise ServiceError(f"the exact verifier's expected is not a valid regular expression: {error}") from None
    return {"expected": expected, "regex": regex}


def run(spec: dict[str, object], reply: str, context: VerifierContext) -> Verdict:
    expected, answer = str(spec["expected"]), reply.strip()
    if not spec["regex"]:
        if answer == expected.strip():
            return Verdict(True, "the reply equals the expected answer")
        return Verdict(False, "the reply differs from the expected answer")
    matched = _fullmatch(expected, answer)
    if matched is None:
        return Verdict(False, f"matching the reply against the regex took over {MATCH_TIMEOUT_S:g} s")
    if matched:
        return Verdict(True, "the reply matches the expected regex")
    return Verdict(False, "the reply does not match the expected regex")


def _fullmatch(pattern: str, text: str) -> bool | None:
    """Whether `pattern` fully matches `text`, decided in a child process; None when it ran out of time."""
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _MATCHER],
            input=json.dumps({"pattern": pattern, "text": text}),
            capture_output=True,
            text=True,
            timeout=MATCH_TIMEOUT_S,
            env={},
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None
    return done.returncode == 0 and done.stdout == "1"


KIND = Kind("exact", check, run)
