"""Agent attempts: the operator's harness run in the sandbox, its model calls metered by the gateway.

The harness gets a fresh working directory holding the task (`task.json`: messages, instance,
metadata; `prompt.md`: the last user message), and in its environment `OPENAI_BASE_URL` (the
gateway) and `OPENAI_API_KEY` (the attempt's one-time token). What it writes to the output
file (`candidate.txt` by default) is the candidate the task's verifier checks. It runs with a
wall-clock limit, its whole process group killed at the end and its directory removed; unlike a
verifier it shares the host's network, since it must reach the gateway.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelarb.service.verifiers import run_sandboxed

MAX_CANDIDATE_BYTES = 1_000_000
MAX_LOG_BYTES = 16_384


@dataclass(frozen=True)
class Harness:
    """The operator's agent harness: the command, its limits, and the file it writes its candidate to."""

    command: list[str]
    timeout_s: float
    max_steps: int
    output: str = "candidate.txt"
    memory_mb: int = 2048
    max_processes: int = 256
    readonly_paths: tuple[str, ...] = ()


def run_harness(
    harness: Harness,
    messages: list[dict[str, Any]],
    instance: str | None,
    metadata: dict[str, Any],
    gateway_url: str,
    token: str,
) -> tuple[str | None, str]:
    """(the candidate, or None if the harness wrote none; what happened, for the attempt's record)."""
    with tempfile.TemporaryDirectory(prefix="modelarb-agent-") as folder:
        workdir = Path(folder)
        (workdir / "task.json").write_text(
            json.dumps({"messages": messages, "instance": instance, "metadata": metadata})
        )
        users = [str(m["content"]) for m in messages if m.get("role") == "user" and isinstance(m.get("content"), str)]
        (workdir / "prompt.md").write_text(users[-1] if users else "")
        env = {
            "OPENAI_BASE_URL": gateway_url,
            "OPENAI_API_KEY": token,
            "MODELARB_TASK_FILE": "task.json",
            "MODELARB_OUTPUT": harness.output,
        }
        result = run_sandboxed(
            harness.command,
            workdir,
            timeout_s=harness.timeout_s,
            memory_mb=harness.memory_mb,
            max_processes=harness.max_processes,
            max_output_bytes=MAX_LOG_BYTES,
            extra_env=env,
            network=True,
            readonly_paths=harness.readonly_paths,
        )
        output = workdir / harness.output
        if not output.is_file() or output.is_symlink():
            return None, f"the harness wrote no {harness.output}: {result.reason or 'it exited 0'}"
        with output.open("rb") as handle:
            data = handle.read(MAX_CANDIDATE_BYTES + 1)
    if len(data) > MAX_CANDIDATE_BYTES:
        return None, f"the harness's candidate is larger than {MAX_CANDIDATE_BYTES} bytes"
    return data.decode(errors="replace"), result.reason or "the harness exited 0"
