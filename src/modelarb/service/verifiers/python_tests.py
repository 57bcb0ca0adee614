"""The `python-tests` kind: the reply's code passes the customer's pytest tests, run in the sandbox.

The code is the first fenced block tagged python (or py, python3), else the first fenced block of any
tag; it becomes `solution.py` next to the tests' `test_solution.py` (so tests import from `solution`).
Verified iff pytest exits 0 and its summary reports at least one passed test. Installed pytest
plugins are not loaded. Code that tampers with pytest from inside its process is beyond this check;
the sandbox bounds what such code can reach.
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from modelarb.service.verifiers.base import Kind, Verdict, VerifierContext, expect_fields, seconds_field, text_field
from modelarb.service.verifiers.fences import first_block
from modelarb.service.verifiers.sandbox import run_sandboxed

MAX_TESTS_CHARS = 200_000
MAX_TIMEOUT_S = 300.0
MAX_OUTPUT_BYTES = 64 * 1024
PYTHON_TAGS = ("python", "py", "python3")

_PASSED = re.compile(r"\b[1-9]\d* passed\b")


def check(spec: Mapping[str, object], commands: Mapping[str, Sequence[str]]) -> dict[str, object]:
    expect_fields(spec, "python-tests", ["tests"], ["timeout_s"])
    normalised: dict[str, object] = {"tests": text_field(spec, "python-tests", "tests", MAX_TESTS_CHARS)}
    timeout_s = seconds_field(spec, "python-tests", "timeout_s", MAX_TIMEOUT_S)
    if timeout_s is not None:
        normalised["timeout_s"] = timeout_s
    return normalised


def run(spec: dict[str, object], reply: str, context: VerifierContext) -> Verdict:
    code = first_block(reply, PYTHON_TAGS)
    if code is None:
        return Verdict(False, "the reply has no fenced code block (```python ... ```) to test")
    timeout = spec.get("timeout_s", context.timeout_s)
    timeout_s = float(timeout) if isinstance(timeout, int | float) else context.timeout_s
    with tempfile.TemporaryDirectory(prefix="modelarb-verify-") as folder:
        workdir = Path(folder)
        (workdir / "solution.py").write_text(code, encoding="utf-8")
        (workdir / "test_solution.py").write_text(str(spec["tests"]), encoding="utf-8")
        (workdir / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")  # rootdir here, no ini search above
        result = run_sandboxed(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_solution.py"],
            workdir,
            timeout_s=timeout_s,
            memory_mb=context.memory_mb,
            max_processes=context.max_processes,
            max_output_bytes=MAX_OUTPUT_BYTES,
            readonly_paths=context.readonly_paths,
            extra_env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONDONTWRITEBYTECODE": "1"},
        )
    summary = _summary(result.stdout)
    if result.timed_out:
        return Verdict(False, f"pytest {result.reason}")
    if result.exit_code == 0 and _PASSED.search(summary):
        return Verdict(True, f"the tests passed: {summary}")
    if result.exit_code == 0:
        return Verdict(False, "pytest exited 0 without reporting a passed test")
    return Verdict(False, f"the tests did not pass: {summary or result.stderr.strip()[-300:]} (pytest {result.reason})")


def _summary(stdout: str) -> str:
    """Pytest's last non-empty output line (its `N passed, M failed in Xs` summary), without the = rules."""
    lines = [line.strip(" =") for line in stdout.splitlines() if line.strip(" =")]
    return lines[-1][:300] if lines else ""


KIND = Kind("python-tests", check, run)
