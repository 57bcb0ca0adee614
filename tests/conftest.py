"""Shared fixtures: the paper's data (when MODELARB_DATA is set) and running the CLI in-process.

Property tests draw new random examples on every run; `HYPOTHESIS_PROFILE=ci` (set by
.ci/run) makes them draw the same examples every time, so CI is repeatable.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

from modelarb.cli import main

settings.register_profile("ci", derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def paper_data() -> Path:
    """The computational-arbitrage data folder named by MODELARB_DATA."""
    root = os.environ.get("MODELARB_DATA")
    if not root:
        pytest.skip("MODELARB_DATA is unset: point it at the computational-arbitrage data to run this test")
    return Path(root)


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run `modelarb ARGS...` through the console entry point (with its error handling) in this process."""

    def run(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["modelarb", *args])
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main()
        captured = capsys.readouterr()
        code = exit_info.value.code
        return CliResult(code if isinstance(code, int) else int(code is not None), captured.out, captured.err)

    return run
