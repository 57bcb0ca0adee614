"""The one sandbox every code-running verifier uses: run a candidate's command, contained and bounded.

Two kinds, `sandbox_kind()` says which is in use:

- ``bwrap`` (bubblewrap >= 0.8 on PATH): new mount, PID, network, IPC and UTS namespaces. The sandbox
  sees only read-only /usr (and the /bin, /lib* links), a few /etc files the dynamic loader and Python
  read, the running Python (virtualenv and base interpreter, read-only), a private /tmp, a minimal
  /proc and /dev, and the work directory (read-write). No network at all, not even loopback to the
  host. The broker's database, environment and home are not mounted. When the PID namespace's first
  process ends, the kernel kills everything left in it, so nothing outlives a run.
- ``rlimits`` (fallback, no bubblewrap): a new session, an empty environment and the same resource
  limits, nothing more. The network is NOT contained and the candidate sees the host's file system
  with its user's permissions. Run as root, the candidate runs under a throwaway user id, so it cannot
  read or write root's private files and every process it leaves behind is killed by user id; run as
  another user, the process limit counts all that user's processes and a candidate that leaves its
  session can outlive the run.

Both set, inside the sandbox, RLIMIT_AS (memory), RLIMIT_NPROC (processes), RLIMIT_CPU, RLIMIT_FSIZE
and RLIMIT_CORE, and enforce a wall-clock timeout that kills the whole process group. When the broker
runs as root, the candidate runs under a fresh unprivileged user id per run (root ignores
RLIMIT_NPROC); the work directory is handed to that user.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

SANDBOX_KINDS = ("bwrap", "rlimits")

_UID_LOW = 1 << 20
_UID_HIGH = 1 << 30
_FSIZE_BYTES = 64 * 1024 * 1024
_NOFILE = 1024
_TMP_BYTES = 64 * 1024 * 1024
_READ_CHUNK = 65536
_ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/alternatives",
)
_ROOT_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")

# Runs inside the sandbox, before the candidate: drop to the throwaway user, set the limits, exec.
_LAUNCHER = """
import os, resource, sys
uid, cpu, memory, nproc, fsize, nofile = (int(a) for a in sys.argv[1:7])
argv = sys.argv[8:]
program = argv[0]
if "/" not in program:
    folders = [f for f in os.environ.get("PATH", "").split(":") if f]
    program = next((os.path.join(f, program) for f in folders if os.access(os.path.join(f, program), os.X_OK)), program)
if uid >= 0:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
for limit, value in ((resource.RLIMIT_CPU, cpu), (resource.RLIMIT_AS, memory), (resource.RLIMIT_NPROC, nproc),
                     (resource.RLIMIT_FSIZE, fsize), (resource.RLIMIT_NOFILE, nofile), (resource.RLIMIT_CORE, 0)):
    resource.setrlimit(limit, (value, value))
try:
    os.execv(program, argv)
except OSError as error:
    sys.stderr.write("sandbox: cannot run " + program + ": " + str(error) + "\\n")
    sys.exit(127)
"""

# Run as the throwaway user after a run: signal every process that user still has until none is left
# (kill -1 spares the caller). A shell, not Python: the interpreter may sit where that user cannot read.
_SWEEPER = "i=0; while kill -s KILL -- -1 2>/dev/null && [ $i -lt 1000 ]; do i=$((i + 1)); done"


@dataclass(frozen=True)
class SandboxResult:
    """How a sandboxed command ended; `reason` says why it failed ('' when it exited 0 in time)."""

    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool
    reason: str

    @property
    def ok(self) -> bool:
        """Whether the command exited 0 within its time."""
        return not self.reason


def sandbox_kind() -> str:
    """'bwrap' when bubblewrap is on PATH, else 'rlimits' (no network containment): see the module docstring."""
    return "bwrap" if shutil.which("bwrap") else "rlimits"


def run_sandboxed(
    argv: list[str],
    workdir: Path,
    *,
    timeout_s: float,
    memory_mb: int,
    max_processes: int,
    max_output_bytes: int,
    readonly_paths: Sequence[str] = (),
    extra_env: Mapping[str, str] | None = None,
    kind: str | None = None,
    network: bool = False,
) -> SandboxResult:
    """Run `argv` in `workdir` (a fresh directory the caller made and will remove) inside the sandbox.

    `readonly_paths` are extra host paths made visible read-only (bwrap only), e.g. an operator's
    checker installation; `extra_env` adds variables to the minimal environment. `kind` forces a
    sandbox kind (default `sandbox_kind()`). Never raises for anything the command does; raises
    ValueError for a bad argument. Under `rlimits` as root, the command and its interpreter must be
    reachable by any user (not under /root), since it runs as a throwaway user. `network` shares the
    host's network (an agent harness must reach the broker's gateway); everything else stays contained.
    """
    kind = kind or sandbox_kind()
    if kind not in SANDBOX_KINDS:
        raise ValueError(f"unknown sandbox kind {kind!r}: use one of {', '.join(SANDBOX_KINDS)}")
    if not argv:
        raise ValueError("the sandboxed command is empty")
    if timeout_s <= 0 or memory_mb <= 0 or max_processes <= 0 or max_output_bytes < 0:
        raise ValueError("timeout_s, memory_mb and max_processes must be positive, max_output_bytes non-negative")
    workdir = workdir.resolve()
    uid = _throwaway_uid() if os.geteuid() == 0 else -1
    if uid >= 0:
        _hand_over(workdir, uid)
    limits = [uid, math.ceil(timeout_s) + 1, memory_mb * 1024 * 1024, max_processes, _FSIZE_BYTES, _NOFILE]
    launch = [sys.executable, "-I", "-S", "-c", _LAUNCHER, *(str(v) for v in limits), "--", *argv]
    env = {**(extra_env or {}), **_environment(workdir)}
    if kind == "bwrap":
        command = [*_bwrap_prefix(workdir, env, readonly_paths, as_root=uid >= 0, network=network), *launch]
        env = {}
    else:
        command = launch
    try:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as error:
        return SandboxResult(None, "", "", False, f"the sandbox could not start: {error}")
    readers = [_Reader(process.stdout, max_output_bytes), _Reader(process.stderr, max_output_bytes)]
    timed_out = False
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        _kill_group(process.pid)
        process.wait()
        if uid >= 0:
            _sweep_user(uid)
    for reader in readers:
        reader.join()
    exit_code = None if timed_out else process.returncode
    stdout, stderr = readers[0].text(), readers[1].text()
    return SandboxResult(exit_code, stdout, stderr, timed_out, _reason(exit_code, timed_out, timeout_s, stderr))


def _environment(workdir: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": str(workdir), "LANG": "C.UTF-8", "TMPDIR": "/tmp"}


def _bwrap_prefix(
    workdir: Path, env: dict[str, str], readonly_paths: Sequence[str], *, as_root: bool, network: bool = False
) -> list[str]:
    # As root, no user namespace: the launcher needs CAP_SETUID to drop to the throwaway user (and a
    # real unprivileged uid is what makes RLIMIT_NPROC bite). As another user, bwrap creates one.
    if as_root:
        unshare = ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
        unshare += [] if network else ["--unshare-net"]
    else:
        unshare = ["--unshare-all", "--unshare-user", "--cap-drop", "ALL", "--disable-userns"]
        unshare += ["--share-net"] if network else []
    args = ["bwrap", *unshare, "--die-with-parent", "--new-session", "--clearenv"]
    for name, value in env.items():
        args += ["--setenv", name, value]
    args += ["--ro-bind", "/usr", "/usr"]
    for link in _ROOT_LINKS:
        if os.path.islink(link):
            args += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            args += ["--ro-bind", link, link]
    args += ["--perms", "0755", "--dir", "/etc"]
    for path in _ETC_FILES:
        args += ["--ro-bind-try", path, path]
    args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(_TMP_BYTES), "--tmpfs", "/tmp"]
    made: set[str] = {"/", "/usr", "/tmp", "/proc", "/dev", "/etc"}
    python_paths = [sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))]
    bound: list[str] = []
    for path in dict.fromkeys([*python_paths, *readonly_paths]):
        if not any(_within(path, other) for other in ["/usr", *bound]):
            args += [*_parents(path, made), "--ro-bind", path, path]
            bound.append(path)
    args += [*_parents(str(workdir), made), "--bind", str(workdir), str(workdir), "--chdir", str(workdir)]
    return args


def _parents(path: str, made: set[str]) -> list[str]:
    """Create `path`'s missing parents world-traversable (bwrap would make them 0700, closed to the candidate)."""
    args: list[str] = []
    parent = Path(path).parent
    for ancestor in [*reversed(parent.parents), parent]:
        name = str(ancestor)
        if name not in made and not _within(name, "/usr"):
            args += ["--perms", "0755", "--dir", name]
            made.add(name)
    made.add(path)
    return args


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _throwaway_uid() -> int:
    return _UID_LOW + secrets.randbelow(_UID_HIGH - _UID_LOW)


def _hand_over(workdir: Path, uid: int) -> None:
    os.chown(workdir, uid, uid)
    os.chmod(workdir, 0o700)
    for root, dirs, files in os.walk(workdir):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, uid, follow_symlinks=False)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _sweep_user(uid: int) -> None:
    """Kill every process the throwaway user still has (they may have left the process group)."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run(
            ["/bin/sh", "-c", _SWEEPER],
            user=uid,
            group=uid,
            extra_groups=[],
            env={},
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
            check=False,
        )


def _reason(exit_code: int | None, timed_out: bool, timeout_s: float, stderr: str) -> str:
    if timed_out:
        return f"timed out after {timeout_s:g} s and was killed"
    if exit_code == 0:
        return ""
    if exit_code is not None and exit_code < 0:
        return f"was killed by {signal.Signals(-exit_code).name} (a CPU or memory limit?)"
    if exit_code is not None and exit_code > 128 and exit_code - 128 in signal.valid_signals():
        return f"was killed by {signal.Signals(exit_code - 128).name} (a CPU or memory limit?)"
    tail = stderr.strip().splitlines()[-1:] if stderr.strip() else []
    return f"exited with code {exit_code}" + (f": {tail[0][:200]}" if tail else "")


class _Reader:
    """Drain one pipe on a thread, keeping the first `limit` bytes and discarding the rest."""

    def __init__(self, pipe: IO[bytes] | None, limit: int) -> None:
        self._pipe = pipe
        self._limit = limit
        self._chunks: list[bytes] = []
        self._kept = 0
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        if self._pipe is None:
            return
        with self._pipe:
            while chunk := os.read(self._pipe.fileno(), _READ_CHUNK):
                room = self._limit - self._kept
                if room > 0:
                    self._chunks.append(chunk[:room])
                    self._kept += min(room, len(chunk))

    def join(self) -> None:
        self._thread.join(timeout=2)

    def text(self) -> str:
        return b"".join(self._chunks).decode("utf-8", errors="replace")
