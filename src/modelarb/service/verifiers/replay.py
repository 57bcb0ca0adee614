"""The `replay` kind: the reply carries the replay market's signed outcome for this instance and provider."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from modelarb.service.replay.signing import read_signed
from modelarb.service.verifiers.base import Kind, Verdict, VerifierContext, expect_fields


def check(spec: Mapping[str, object], commands: Mapping[str, Sequence[str]]) -> dict[str, object]:
    expect_fields(spec, "replay", [], [])
    return {}


def run(spec: dict[str, object], reply: str, context: VerifierContext) -> Verdict:
    if context.replay_key is None:
        return Verdict(False, "the broker has no replay key")
    outcome = read_signed(context.replay_key, reply)
    if outcome is None:
        return Verdict(False, "the reply carries no validly signed replay outcome")
    if outcome.instance != context.instance:
        return Verdict(False, f"the signed outcome is for instance {outcome.instance!r}, not {context.instance!r}")
    if outcome.provider != context.provider:
        return Verdict(False, f"the signed outcome is for provider {outcome.provider!r}, not {context.provider!r}")
    if not outcome.solved:
        return Verdict(False, f"the signed outcome says attempt {outcome.attempt} did not solve the instance")
    return Verdict(True, f"the signed outcome says attempt {outcome.attempt} solved the instance")


KIND = Kind("replay", check, run)
