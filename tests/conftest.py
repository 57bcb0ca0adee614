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


# --- Databases for the broker: a throwaway PostgreSQL cluster per session, a fresh database per test ---

from collections.abc import Iterator  # noqa: E402

from postgres import PostgresServer, find_bin_dir  # noqa: E402


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster started for this test session (skips when PostgreSQL is not installed)."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin): "
            "apt-get install postgresql to run the PostgreSQL tests"
        )
    server = PostgresServer(bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database, dropped after the test."""
    name = postgres_server.create_database()
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database URL: an SQLite file, or a new PostgreSQL database (the same test runs on both)."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'broker.sqlite3'}"
