"""Where the independent parts of a job run: in this process, in local processes, or on a Dask cluster.

An executor applies `fn(shared, *part)` to each part and yields `(part index, result)` as parts
finish; `in_order` collects the results by part index. `alongside` runs two independent jobs at once
(the second in a forked process). Work is split by the caller, from its
inputs alone (bootstrap chunks, first-stage providers of a search), and a part's result depends
only on the part, so every executor gives the same numbers. `shared` (e.g. the market) is shipped
to every worker with the job: workers need modelarb, not the data.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from modelarb.errors import AnalysisError

R = TypeVar("R")
S = TypeVar("S")
Part = tuple[Any, ...]
EXECUTORS = ("serial", "processes")
SCHEMES = ("tcp://", "tls://", "inproc://", "ucx://")
CONNECT_TIMEOUT = 5.0  # seconds to open a TCP connection to a scheduler when checking it


class Executor(Protocol):
    """Runs parts of a job and yields their results as they finish."""

    def map_chunks(self, fn: Callable[..., R], shared: Any, parts: Sequence[Part]) -> Iterator[tuple[int, R]]: ...


@dataclass(frozen=True)
class SerialExecutor:
    """Every part in this process, in order."""

    def map_chunks(self, fn: Callable[..., R], shared: Any, parts: Sequence[Part]) -> Iterator[tuple[int, R]]:
        for k, part in enumerate(parts):
            yield k, fn(shared, *part)


@dataclass(frozen=True)
class ProcessExecutor:
    """Parts across local worker processes (`workers`, default all cores), started fresh for each job."""

    workers: int | None = None

    def map_chunks(self, fn: Callable[..., R], shared: Any, parts: Sequence[Part]) -> Iterator[tuple[int, R]]:
        workers = self.workers or os.cpu_count() or 1
        context = multiprocessing.get_context("spawn")  # no fork: the caller may hold threads (Dask, rich)
        pool = ProcessPoolExecutor(max_workers=min(workers, len(parts)) or 1, mp_context=context)
        try:
            futures = {pool.submit(fn, shared, *part): k for k, part in enumerate(parts)}
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:  # on an error or interrupt, drop the parts not yet started
            pool.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class DaskExecutor:
    """Parts on an existing Dask cluster at `address` (e.g. tcp://10.0.0.5:8786); workers need modelarb."""

    address: str
    timeout: float = 30.0

    def check(self) -> None:
        """Fail now, with one clear message, if the scheduler's TCP port does not answer."""
        scheme, _, location = self.address.partition("://")
        if scheme not in ("tcp", "tls"):
            return
        host, colon, port = location.rpartition(":")
        if not colon or not port.isdigit() or not host:
            raise AnalysisError(f"--cluster {self.address!r} has no port; write e.g. {scheme}://HOST:8786")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=min(self.timeout, CONNECT_TIMEOUT)).close()
        except OSError as exc:
            raise AnalysisError(
                f"cannot reach the Dask scheduler at {self.address}: {exc.strerror or exc}; start one with "
                "`dask scheduler` and its workers with `dask worker` (docs/cluster.md)"
            ) from None

    def map_chunks(self, fn: Callable[..., R], shared: Any, parts: Sequence[Part]) -> Iterator[tuple[int, R]]:
        from distributed import Client
        from distributed import as_completed as dask_completed

        try:
            client = Client(self.address, timeout=self.timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise AnalysisError(f"cannot reach the Dask scheduler at {self.address}: {exc}") from None
        with client:
            _check_workers(client, self.address, self.timeout)
            remote = client.scatter(shared, broadcast=True)
            futures: dict[Any, int] = {client.submit(fn, remote, *part, pure=False): k for k, part in enumerate(parts)}
            for future in dask_completed(futures, loop=client.loop):
                yield futures[future], future.result()


def _version() -> str:
    from modelarb import __version__

    return __version__


def _check_workers(client: Any, address: str, timeout: float) -> None:
    """The cluster has workers, and each runs this modelarb version."""
    from modelarb import __version__

    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        raise AnalysisError(f"the Dask scheduler at {address} has no workers; start some with `dask worker`") from None
    try:
        versions = client.run(_version)
    except Exception as exc:  # a worker without modelarb fails to unpickle the probe
        raise AnalysisError(f"a Dask worker at {address} cannot run modelarb ({exc}); install it there") from None
    other = sorted({f"{worker} has {v}" for worker, v in versions.items() if v != __version__})
    if other:
        raise AnalysisError(
            f"every Dask worker needs modelarb {__version__} (this one's): {'; '.join(other[:3])}; install it there"
        )


def in_order(executor: Executor, fn: Callable[..., R], shared: Any, parts: Sequence[Part]) -> list[R]:
    """Every part's result, by part index, whatever order the executor finished them in."""
    results: dict[int, R] = dict(executor.map_chunks(fn, shared, parts))
    return [results[k] for k in range(len(parts))]


def executor_for(
    name: str | None = None, cluster: str | None = None, workers: int | None = None, *, check: bool = False
) -> Executor:
    """An executor from CLI-style options: a Dask cluster address wins; else `serial` or `processes`.

    `check`: make sure the cluster's scheduler answers now, before any work.
    """
    if cluster:
        if not cluster.startswith(SCHEMES):
            raise AnalysisError(f"--cluster {cluster!r} is not a scheduler address; write e.g. tcp://HOST:8786")
        dask = DaskExecutor(cluster)
        if check:
            dask.check()
        return dask
    if workers is not None and workers < 1:
        raise AnalysisError(f"workers must be at least 1, got {workers}")
    if name in (None, "processes"):
        return ProcessExecutor(workers)
    if name == "serial":
        return SerialExecutor()
    raise AnalysisError(f"unknown executor {name!r}; use one of {', '.join(EXECUTORS)}, or a Dask cluster address")


def alongside(here: Callable[[], R], there: Callable[[], S]) -> tuple[R, S]:
    """`here()` in this process while `there()` runs in a forked child, when this machine has a second core and
    can fork; else one after the other. Each job depends only on its own inputs, so the results are the same
    either way. An error in `there` is raised here; if the child dies without an answer, `there` runs here."""
    if (os.cpu_count() or 1) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return here(), there()
    context = multiprocessing.get_context("fork")  # the child only computes and sends back: no lock it needs
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_answer, args=(there, send), daemon=True)
    child.start()
    send.close()
    try:
        mine = here()
        try:
            failed, theirs = receive.recv()
        except EOFError:  # the child died (e.g. killed for memory): do its job here
            return mine, there()
    finally:
        receive.close()
        if child.is_alive():
            child.terminate()
        child.join()
    if failed:
        raise theirs
    return mine, theirs


def _answer(job: Callable[[], Any], send: Any) -> None:
    """Run `job` and send (failed, result or exception) back."""
    try:
        send.send((False, job()))
    except Exception as exc:
        send.send((True, exc))
    finally:
        send.close()
