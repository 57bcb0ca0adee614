"""The `command` kind: an operator-configured checker (a SWE-bench harness, a Lean checker) judges the reply.

The candidate is the reply's first fenced code block (any tag) when it has one, else the whole reply.
It is written to `candidate.txt` in a fresh working directory; the command's argv may name it as
`{candidate}`. The command runs there in the sandbox (no network under bwrap; add the paths a checker
needs to `VerifierContext.readonly_paths`). Verified iff it exits 0.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from modelarb.errors import ServiceError
from modelarb.service.verifiers.base import Kind, Verdict, VerifierContext, expect_fields, text_field
from modelarb.service.verifiers.fences import first_block
from modelarb.service.verifiers.sandbox import run_sandboxed

MAX_NAME_CHARS = 200
MAX_OUTPUT_BYTES = 64 * 1024
CANDIDATE_FILE = "candidate.txt"
PLACEHOLDER = "{candidate}"


def check(spec: Mapping[str, object], commands: Mapping[str, Sequence[str]]) -> dict[str, object]:
    expect_fields(spec, "command", ["name"], [])
    name = text_field(spec, "command", "name", MAX_NAME_CHARS)
    if name not in commands:
        configured = ", ".join(sorted(commands)) or "none are configured"
        raise ServiceError(f"the command verifier names {name!r}, which the operator has not configured: {configured}")
    if not commands[name]:
        raise ServiceError(f"the operator's command {name!r} is empty: give it an argv list in the broker's config")
    return {"name": name}


def run(spec: dict[str, object], reply: str, context: VerifierContext) -> Verdict:
    name = str(spec["name"])
    block = first_block(reply)
    candidate = reply if block is None else block
    with tempfile.TemporaryDirectory(prefix="modelarb-verify-") as folder:
        workdir = Path(folder)
        path = workdir / CANDIDATE_FILE
        path.write_text(candidate, encoding="utf-8")
        argv = [argument.replace(PLACEHOLDER, str(path.resolve())) for argument in context.commands[name]]
        result = run_sandboxed(
            argv,
            workdir,
            timeout_s=context.timeout_s,
            memory_mb=context.memory_mb,
            max_processes=context.max_processes,
            max_output_bytes=MAX_OUTPUT_BYTES,
            readonly_paths=context.readonly_paths,
        )
    if result.ok:
        return Verdict(True, f"the {name} command accepted the candidate")
    return Verdict(False, f"the {name} command {result.reason}")


KIND = Kind("command", check, run)
