"""A throwaway PostgreSQL cluster for tests: `initdb` in a temp dir, `pg_ctl` on a free loopback port.

As root, the cluster runs as an unprivileged user (`postgres`, else `nobody`), since PostgreSQL
refuses to run as root. Each test gets its own database (`create_database`), dropped afterwards.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

USER = "modelarb"
START_TIMEOUT_S = 30


def find_bin_dir() -> Path | None:
    """The folder holding `initdb` and `pg_ctl`: PATH first, else the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: _version(Path(p)))
    return Path(candidates[-1]).parent if candidates else None


def _version(initdb: Path) -> int:
    name = initdb.parent.parent.name
    return int(name) if name.isdigit() else 0


def _run_as() -> str | None:
    """The unprivileged user to run the cluster as when we are root; None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root, but neither the 'postgres' nor the 'nobody' user exists to run PostgreSQL")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """A running cluster; `create_database()` gives a fresh database's URL, `stop()` ends it all."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.user = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="modelarb-pg-"))
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.log = self.root / "server.log"
        self.port = 0
        self.socket_dir.mkdir()
        if self.user is not None:
            for path in (self.root, self.socket_dir):
                shutil.chown(path, user=self.user)

    def _command(self, tool: str, *args: str) -> list[str]:
        command = [str(self.bin_dir / tool), *args]
        return command if self.user is None else ["runuser", "-u", self.user, "--", *command]

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run(
            self._command(tool, *args), cwd=self.root, capture_output=True, text=True, timeout=START_TIMEOUT_S
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({result.returncode}):\n{result.stderr}\n{log}")

    def start(self) -> None:
        self._run("initdb", "--auth=trust", "-U", USER, "-E", "UTF8", "--no-locale", "-D", str(self.data_dir))
        for attempt in range(3):  # another process may take the free port between the probe and the start
            self.port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.socket_dir} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
            )
            try:
                self._run("pg_ctl", "-w", "-D", str(self.data_dir), "-l", str(self.log), "-o", options, "start")
                return
            except RuntimeError:
                if attempt == 2:
                    raise

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        with psycopg.connect(f"postgresql://{USER}@127.0.0.1:{self.port}/postgres", autocommit=True) as connection:
            connection.execute(sql)

    def create_database(self) -> str:
        """A new empty database; returns its name."""
        name = f"t_{secrets.token_hex(6)}"
        self._admin(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self._run("pg_ctl", "stop", "-m", "immediate", "-D", str(self.data_dir))
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
