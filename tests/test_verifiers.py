"""Verifier kinds and their registry: spec checking at submission, verdicts on real replies (real sandbox runs)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from modelarb.errors import ServiceError
from modelarb.service.replay.signing import Outcome, sign
from modelarb.service.verifiers import KINDS, Verdict, VerifierContext, check_spec, exact, verify

KEY = b"replay-key-for-tests"
COMMANDS = {
    "equals-42": ["/bin/sh", "-c", 'test "$(cat {candidate})" = 42'],
    "reads-cwd-file": ["/bin/sh", "-c", "grep -q '^diff' candidate.txt"],
}
TESTS = """from solution import add


def test_add():
    assert add(2, 3) == 5


def test_zero():
    assert add(0, 0) == 0
"""


BASE_CONTEXT = VerifierContext(
    replay_key=KEY, commands=COMMANDS, instance="django__django-11099", provider="cheap-model", timeout_s=20
)


def context(**overrides: Any) -> VerifierContext:
    return replace(BASE_CONTEXT, **overrides)


def judge(spec: object, reply: str, **overrides: Any) -> Verdict:
    ctx = context(**overrides)
    return verify(check_spec(spec, ctx.commands), reply, ctx)


def test_the_kinds() -> None:
    assert KINDS == ("exact", "python-tests", "command", "replay")


# exact


def test_exact_accepts_the_expected_answer_up_to_surrounding_whitespace() -> None:
    assert judge({"kind": "exact", "expected": "42"}, "  42\n").verified
    verdict = judge({"kind": "exact", "expected": "42"}, "The answer is 42")
    assert verdict == Verdict(False, "the reply differs from the expected answer")


def test_exact_regex_must_match_the_whole_reply() -> None:
    spec = {"kind": "exact", "expected": r"\d+ apples?", "regex": True}
    assert judge(spec, "12 apples\n").verified
    assert not judge(spec, "I count 12 apples").verified
    assert not judge(spec, "12 pears").verified


def test_a_backtracking_regex_costs_a_child_process_not_the_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exact, "MATCH_TIMEOUT_S", 1.0)
    verdict = judge({"kind": "exact", "expected": "(a+)+$", "regex": True}, "a" * 40 + "!")
    assert verdict == Verdict(False, "matching the reply against the regex took over 1 s")


def test_check_spec_fills_in_defaults() -> None:
    assert check_spec({"kind": "exact", "expected": "x"}, {}) == {"kind": "exact", "expected": "x", "regex": False}
    assert check_spec({"kind": "replay"}, {}) == {"kind": "replay"}
    assert check_spec({"kind": "python-tests", "tests": "t", "timeout_s": 5}, {}) == {
        "kind": "python-tests",
        "tests": "t",
        "timeout_s": 5.0,
    }


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (["exact"], "must be a JSON object"),
        ({"expected": "1"}, "unknown verifier kind None"),
        ({"kind": "lean"}, "unknown verifier kind 'lean': use one of exact, python-tests, command, replay"),
        ({"kind": "exact"}, "needs the field expected"),
        ({"kind": "exact", "expected": 42}, "expected must be a string, not int"),
        ({"kind": "exact", "expected": "1", "regex": "yes"}, "regex must be true or false"),
        ({"kind": "exact", "expected": "1", "case": "ignore"}, "has no field case: its fields are expected, regex"),
        ({"kind": "exact", "expected": "(", "regex": True}, "not a valid regular expression"),
        ({"kind": "exact", "expected": "x" * 100_001}, "the limit is 100000"),
        ({"kind": "exact", "expected": "x" * 10_001, "regex": True}, "the limit is 10000"),
        ({"kind": "python-tests"}, "needs the field tests"),
        ({"kind": "python-tests", "tests": "t", "timeout_s": 0}, "timeout_s must be a number of seconds in (0, 300]"),
        ({"kind": "python-tests", "tests": "t", "timeout_s": 301}, "in (0, 300]"),
        ({"kind": "python-tests", "tests": "t", "timeout_s": True}, "in (0, 300]"),
        ({"kind": "python-tests", "tests": "x" * 200_001}, "the limit is 200000"),
        ({"kind": "command", "name": "rm-rf"}, "names 'rm-rf', which the operator has not configured: equals-42, "),
        ({"kind": "command", "name": ["equals-42"]}, "name must be a string, not list"),
        ({"kind": "replay", "key": "guess"}, "has no field key: its fields are none"),
    ],
)
def test_check_spec_rejects_bad_specs_saying_what_is_wrong(spec: object, message: str) -> None:
    with pytest.raises(ServiceError) as error:
        check_spec(spec, COMMANDS)
    assert message in str(error.value)


def test_verify_refuses_a_spec_that_is_no_longer_valid_and_an_oversized_reply() -> None:
    spec = check_spec({"kind": "command", "name": "equals-42"}, COMMANDS)
    verdict = verify(spec, "42", context(commands={}))
    assert not verdict.verified
    assert "no longer valid" in verdict.reason
    verdict = verify({"kind": "exact", "expected": "x", "regex": False}, "x" * 1_000_001, context())
    assert verdict == Verdict(False, "the reply is 1000001 characters long: the limit is 1000000")


# python-tests


def python_reply(code: str, tag: str = "python") -> str:
    return f"Here is my solution.\n\n```{tag}\n{code}\n```\n\nIt adds the numbers."


def test_a_correct_solution_passes_the_tests() -> None:
    verdict = judge({"kind": "python-tests", "tests": TESTS}, python_reply("def add(a, b):\n    return a + b"))
    assert verdict.verified
    assert verdict.reason.startswith("the tests passed: 2 passed")


def test_an_untagged_block_is_tested_and_a_python_block_is_preferred() -> None:
    assert judge(
        {"kind": "python-tests", "tests": TESTS}, python_reply("def add(a, b):\n    return a + b", tag="")
    ).verified
    reply = "Run:\n```bash\npip install nothing\n```\n" + python_reply("def add(a, b):\n    return b + a")
    assert judge({"kind": "python-tests", "tests": TESTS}, reply).verified


def test_a_wrong_solution_fails_the_tests() -> None:
    verdict = judge({"kind": "python-tests", "tests": TESTS}, python_reply("def add(a, b):\n    return a - b"))
    assert not verdict.verified
    assert "1 failed, 1 passed" in verdict.reason


def test_a_reply_without_a_code_block_is_not_verified() -> None:
    verdict = judge({"kind": "python-tests", "tests": TESTS}, "def add(a, b):\n    return a + b")
    assert verdict == Verdict(False, "the reply has no fenced code block (```python ... ```) to test")
    cut_off = "```python\ndef add(a, b):\n    return a + b\n"
    assert not judge({"kind": "python-tests", "tests": TESTS}, cut_off).verified


def test_a_syntax_error_is_not_verified() -> None:
    verdict = judge({"kind": "python-tests", "tests": TESTS}, python_reply("def add(a, b)\n    return a + b"))
    assert not verdict.verified
    assert verdict.reason.startswith("the tests did not pass: 1 error in ")
    assert verdict.reason.endswith("(pytest exited with code 2)")


def test_exiting_0_before_the_tests_run_is_not_verified() -> None:
    verdict = judge({"kind": "python-tests", "tests": TESTS}, python_reply("import os\nos._exit(0)"))
    assert verdict == Verdict(False, "pytest exited 0 without reporting a passed test")


def test_a_solution_that_hangs_is_stopped_at_the_specs_timeout() -> None:
    spec = {"kind": "python-tests", "tests": TESTS, "timeout_s": 2}
    verdict = judge(spec, python_reply("import time\ntime.sleep(3600)\ndef add(a, b):\n    return a + b"))
    assert verdict == Verdict(False, "pytest timed out after 2 s and was killed")


def test_a_solution_cannot_read_the_brokers_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELARB_TEST_PROVIDER_KEY", "sk-secret")
    code = "import os\ndef add(a, b):\n    return a + b if 'MODELARB_TEST_PROVIDER_KEY' not in os.environ else 0"
    assert judge({"kind": "python-tests", "tests": TESTS}, python_reply(code)).verified


# command


def test_a_configured_command_judges_the_first_block_or_the_whole_reply() -> None:
    spec = {"kind": "command", "name": "equals-42"}
    assert judge(spec, "The answer:\n```\n42\n```\n") == Verdict(True, "the equals-42 command accepted the candidate")
    assert judge(spec, "42").verified
    verdict = judge(spec, "The answer is 41")
    assert verdict == Verdict(False, "the equals-42 command exited with code 1")


def test_a_command_runs_in_the_candidates_working_directory() -> None:
    patch = "```diff\ndiff --git a/x b/x\n--- a/x\n+++ b/x\n```"
    assert judge({"kind": "command", "name": "reads-cwd-file"}, patch).verified
    assert not judge({"kind": "command", "name": "reads-cwd-file"}, "```\nno patch\n```").verified


def test_a_command_that_hangs_is_stopped_at_the_contexts_timeout() -> None:
    verdict = judge({"kind": "command", "name": "hang"}, "x", commands={"hang": ["sleep", "3600"]}, timeout_s=1)
    assert verdict == Verdict(False, "the hang command timed out after 1 s and was killed")


# replay


def signed(instance: str = "django__django-11099", provider: str = "cheap-model", solved: bool = True) -> str:
    return "I applied the patch.\n" + sign(KEY, Outcome(instance, provider, 2, solved)) + "\n"


def tampered_signature() -> str:
    line = signed().rstrip("\n")
    return line[:-1] + ("1" if line[-1] == "0" else "0") + "\n"


def test_a_validly_signed_success_for_this_instance_and_provider_verifies() -> None:
    assert judge({"kind": "replay"}, signed()) == Verdict(True, "the signed outcome says attempt 2 solved the instance")


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (tampered_signature(), "no validly signed replay outcome"),
        (signed().replace("cheap-model 2 1 ", "cheap-model 2 0 "), "no validly signed replay outcome"),
        ("I solved it, trust me.", "no validly signed replay outcome"),
        (signed(instance="sympy__sympy-20590"), "is for instance 'sympy__sympy-20590', not 'django__django-11099'"),
        (signed(provider="frontier-model"), "is for provider 'frontier-model', not 'cheap-model'"),
        (signed(solved=False), "says attempt 2 did not solve the instance"),
    ],
    ids=["tampered-signature", "tampered-solved", "unsigned", "wrong-instance", "wrong-provider", "unsolved"],
)
def test_a_replay_outcome_that_does_not_prove_success_fails(reply: str, reason: str) -> None:
    verdict = judge({"kind": "replay"}, reply)
    assert not verdict.verified
    assert reason in verdict.reason


def test_a_replay_reply_signed_with_another_key_fails() -> None:
    forged = sign(b"a-guessed-key", Outcome("django__django-11099", "cheap-model", 2, True))
    assert not judge({"kind": "replay"}, forged).verified


def test_without_a_replay_key_nothing_verifies() -> None:
    assert judge({"kind": "replay"}, signed(), replay_key=None) == Verdict(False, "the broker has no replay key")
