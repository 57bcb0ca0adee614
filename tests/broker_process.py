"""`modelarb serve` in a subprocess, for tests that kill it or run several on one database."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from broker_setup import REPLAY_KEY, providers_file
from modelarb.core.plan import Plan


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BrokerProcess:
    """`modelarb serve` in a subprocess."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log.open("ab")
        command = [sys.executable, "-m", "modelarb", "serve", *args, "--port", str(self.port)]
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the broker did not start: {log.read_text()}")
            time.sleep(0.1)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


def serve_args(folder: Path, plan: Plan, db_url: str, replay_url: str, *extra: str) -> list[str]:
    """`modelarb serve` arguments for `plan` over the replay market at `replay_url`; its files go in `folder`."""
    plan_path, key_file = folder / "plan.json", folder / "replay.key"
    plan.save(plan_path)
    key_file.write_bytes(REPLAY_KEY)
    providers = providers_file(folder, replay_url)
    return [
        "--plan",
        str(plan_path),
        "--providers",
        str(providers),
        "--db",
        db_url,
        "--workers",
        "4",
        "--replay-key-file",
        str(key_file),
        *extra,
    ]
