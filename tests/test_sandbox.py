"""The sandbox contains hostile candidates: real processes under real bubblewrap (and the rlimits fallback).

Each containment test runs a candidate that exits 0 only if its attack worked, so a contained
attack is a failed run with a reason. Candidates are `python3` from /usr/bin, which both kinds reach.
"""

from __future__ import annotations

import os
import resource
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelarb.service.verifiers.sandbox import SandboxResult, run_sandboxed, sandbox_kind

HAVE_BWRAP = shutil.which("bwrap") is not None
HAVE_PYTHON3 = shutil.which("python3", path="/usr/bin:/bin") is not None
IS_ROOT = os.geteuid() == 0

pytestmark = pytest.mark.skipif(not HAVE_PYTHON3, reason="the candidates run /usr/bin/python3, which is missing")

KINDS = [
    pytest.param("bwrap", marks=pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap (bwrap) is not installed")),
    "rlimits",
]


def needs_root_for_files(kind: str) -> None:
    if kind == "rlimits" and not IS_ROOT:
        pytest.skip("the rlimits fallback confines files only when the broker runs as root (throwaway user)")


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A fresh work directory, as the verifiers make it (tempfile, reachable by the throwaway user)."""
    folder = Path(tempfile.mkdtemp(prefix="modelarb-sandbox-test-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def test_process_unharmed() -> Iterator[None]:
    """Whatever a candidate does, this process keeps its limits, directory and ability to start processes."""
    limits = {limit: resource.getrlimit(limit) for limit in (resource.RLIMIT_AS, resource.RLIMIT_NPROC)}
    cwd = os.getcwd()
    yield
    assert {limit: resource.getrlimit(limit) for limit in limits} == limits
    assert os.getcwd() == cwd
    assert subprocess.run(["true"], check=False, timeout=10).returncode == 0


def run_python(
    code: str,
    workdir: Path,
    kind: str,
    *,
    timeout_s: float = 10,
    memory_mb: int = 256,
    max_processes: int = 32,
    max_output_bytes: int = 10_000,
) -> SandboxResult:
    return run_sandboxed(
        ["python3", "-c", code],
        workdir,
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        max_processes=max_processes,
        max_output_bytes=max_output_bytes,
        kind=kind,
    )


def assert_contained(result: SandboxResult) -> None:
    assert not result.ok
    assert result.reason


def test_sandbox_kind_is_bwrap_when_bubblewrap_is_installed() -> None:
    assert sandbox_kind() == ("bwrap" if HAVE_BWRAP else "rlimits")


@pytest.mark.parametrize("kind", KINDS)
def test_a_well_behaved_command_runs_in_its_workdir_with_a_minimal_environment(workdir: Path, kind: str) -> None:
    (workdir / "input.txt").write_text("hello")
    code = "import os, sys; print(open('input.txt').read(), sorted(os.environ)); sys.stderr.write('note')"
    result = run_python(code, workdir, kind)
    assert result == SandboxResult(0, result.stdout, "note", False, "")
    text, names = result.stdout.split(" ", 1)
    assert text == "hello"
    assert set(eval(names)) <= {"PATH", "HOME", "LANG", "TMPDIR", "PWD", "LC_CTYPE"}


@pytest.mark.parametrize("kind", KINDS)
def test_output_is_truncated_and_a_failure_says_why(workdir: Path, kind: str) -> None:
    result = run_python("import sys; print('x' * 1_000_000); sys.exit(3)", workdir, kind, max_output_bytes=1000)
    assert result.stdout == "x" * 1000
    assert result.exit_code == 3
    assert result.reason == "exited with code 3"


def test_a_missing_program_is_a_failure_not_an_exception(workdir: Path) -> None:
    result = run_sandboxed(
        ["no-such-program"], workdir, timeout_s=5, memory_mb=256, max_processes=8, max_output_bytes=1000
    )
    assert result.exit_code == 127
    assert "no-such-program" in result.reason


def test_bad_arguments_are_rejected(workdir: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        run_sandboxed([], workdir, timeout_s=1, memory_mb=64, max_processes=4, max_output_bytes=10)
    with pytest.raises(ValueError, match="positive"):
        run_sandboxed(["true"], workdir, timeout_s=0, memory_mb=64, max_processes=4, max_output_bytes=10)
    with pytest.raises(ValueError, match="kind"):
        run_sandboxed(["true"], workdir, timeout_s=1, memory_mb=64, max_processes=4, max_output_bytes=10, kind="x")


@pytest.mark.skipif(
    not HAVE_BWRAP, reason="bubblewrap (bwrap) is not installed; the fallback does not contain the network"
)
def test_no_network_connection_gets_out(workdir: Path) -> None:
    accepted: list[object] = []
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(0.2)
        port = server.getsockname()[1]
        stop = threading.Event()

        def accept() -> None:
            while not stop.is_set():
                try:
                    connection, peer = server.accept()
                except TimeoutError:
                    continue
                accepted.append(peer)
                connection.close()

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        code = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'stolen')"
        result = run_python(code, workdir, "bwrap")
        assert accepted == []
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass  # the server does accept connections from outside the sandbox
        deadline = time.monotonic() + 2
        while not accepted and time.monotonic() < deadline:
            time.sleep(0.02)
        stop.set()
        thread.join(timeout=2)
    assert_contained(result)
    assert len(accepted) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_writes_outside_the_workdir_do_not_land(workdir: Path, tmp_path: Path, kind: str) -> None:
    needs_root_for_files(kind)
    target = tmp_path / "escaped.txt"
    result = run_python(f"open({str(target)!r}, 'w').write('escaped')", workdir, kind)
    assert_contained(result)
    assert not target.exists()


def test_the_private_tmp_is_private(workdir: Path) -> None:
    if not HAVE_BWRAP:
        pytest.skip("bubblewrap (bwrap) is not installed; the fallback shares /tmp")
    target = Path(tempfile.gettempdir()) / f"modelarb-escape-{os.getpid()}.txt"
    result = run_python(f"open({str(target)!r}, 'w').write('escaped'); print('wrote')", workdir, "bwrap")
    assert result.stdout.strip() == "wrote"  # the sandbox has a writable /tmp of its own...
    assert not target.exists()  # ...which is not the host's


@pytest.mark.parametrize("kind", KINDS)
def test_the_brokers_environment_is_not_visible(workdir: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    secret = "sk-fake-api-key-0123456789"
    monkeypatch.setenv("MODELARB_TEST_PROVIDER_KEY", secret)
    code = "import os, sys; print(dict(os.environ)); sys.exit(0 if 'MODELARB_TEST_PROVIDER_KEY' in os.environ else 4)"
    result = run_python(code, workdir, kind)
    assert_contained(result)
    assert secret not in result.stdout


@pytest.mark.parametrize("kind", KINDS)
def test_files_outside_the_workdir_cannot_be_read(workdir: Path, tmp_path: Path, kind: str) -> None:
    needs_root_for_files(kind)
    secret_file = tmp_path / "broker-secret.txt"
    secret_file.write_text("the broker's database password")
    result = run_python(f"print(open({str(secret_file)!r}).read())", workdir, kind)
    assert_contained(result)
    assert "password" not in result.stdout


@pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap (bwrap) is not installed")
def test_the_brokers_checkout_is_not_mounted(workdir: Path) -> None:
    here = Path(__file__).resolve()
    result = run_python(f"print(open({str(here)!r}).read()[:10])", workdir, "bwrap")
    assert_contained(result)
    assert "FileNotFoundError" in result.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_the_process_count_is_bounded(workdir: Path, kind: str) -> None:
    code = """
import os, sys, time
forked = 0
for _ in range(200):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(20)
        os._exit(0)
    forked += 1
print(forked)
sys.exit(0 if forked == 200 else 5)
"""
    started = time.monotonic()
    result = run_python(code, workdir, kind, max_processes=8)
    assert_contained(result)
    assert int(result.stdout) < 8
    assert time.monotonic() - started < 5  # the sleeping children were killed, not waited for


@pytest.mark.parametrize("kind", KINDS)
def test_a_fork_bomb_is_bounded_and_killed(workdir: Path, kind: str) -> None:
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    started = time.monotonic()
    result = run_python(code, workdir, kind, max_processes=16, timeout_s=1)
    assert result.timed_out and result.exit_code is None
    assert "timed out" in result.reason
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("kind", KINDS)
def test_memory_is_bounded(workdir: Path, kind: str) -> None:
    code = "blocks = [bytearray(64 * 1024 * 1024) for _ in range(32)]; print('allocated 2 GiB')"
    result = run_python(code, workdir, kind, memory_mb=256)
    assert_contained(result)
    assert "MemoryError" in result.stderr
    assert "allocated" not in result.stdout


@pytest.mark.parametrize("kind", KINDS)
def test_a_sleeper_is_killed_at_the_timeout(workdir: Path, kind: str) -> None:
    started = time.monotonic()
    result = run_python("import time; time.sleep(3600)", workdir, kind, timeout_s=2)
    elapsed = time.monotonic() - started
    assert result.timed_out and result.exit_code is None
    assert result.reason == "timed out after 2 s and was killed"
    assert 1.9 < elapsed < 5


@pytest.mark.parametrize("kind", KINDS)
def test_nothing_outlives_the_run(workdir: Path, kind: str) -> None:
    if kind == "rlimits" and not IS_ROOT:
        pytest.skip("the rlimits fallback kills a process that left the session only when run as root")
    marker = workdir / "survivor.txt"
    code = f"""
import subprocess
subprocess.Popen(["sh", "-c", "sleep 1; echo alive > {marker}"], start_new_session=True)
subprocess.Popen(["sh", "-c", "sleep 1; echo alive > {marker}"])
"""
    result = run_python(code, workdir, kind)
    assert result.ok  # the candidate itself ended well; its children must not have survived it
    time.sleep(1.5)
    assert not marker.exists()
