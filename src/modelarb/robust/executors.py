"""Where bootstrap chunks run: in this process, in local processes, or on a Dask cluster.

An executor applies `fn(shared, start, stop)` to chunks of bootstrap indices and yields
`(chunk index, result)` as chunks finish. Results depend only on the chunk, never on
where or in which order it ran.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from modelarb.errors import AnalysisError

S = TypeVar("S")
R = TypeVar("R")
Chunk = tuple[int, int]
ChunkFn = Callable[[S, int, int], R]
EXECUTORS = ("serial", "processes")


class Executor(Protocol):
    """Runs chunks of bootstraps and yields their results as they finish."""

    def map_chunks(self, fn: ChunkFn[S, R], shared: S, chunks: Sequence[Chunk]) -> Iterator[tuple[int, R]]: ...


@dataclass(frozen=True)
class SerialExecutor:
    """Every chunk in this process, in order."""

    def map_chunks(self, fn: ChunkFn[S, R], shared: S, chunks: Sequence[Chunk]) -> Iterator[tuple[int, R]]:
        for k, (start, stop) in enumerate(chunks):
            yield k, fn(shared, start, stop)


@dataclass(frozen=True)
class ProcessExecutor:
    """Chunks across local worker processes (`workers`, default all cores), started fresh for each run."""

    workers: int | None = None

    def map_chunks(self, fn: ChunkFn[S, R], shared: S, chunks: Sequence[Chunk]) -> Iterator[tuple[int, R]]:
        workers = self.workers or os.cpu_count() or 1
        context = multiprocessing.get_context("spawn")  # no fork: the caller may hold threads (Dask, rich)
        pool = ProcessPoolExecutor(max_workers=min(workers, len(chunks)) or 1, mp_context=context)
        try:
            futures = {pool.submit(fn, shared, start, stop): k for k, (start, stop) in enumerate(chunks)}
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:  # on an error or interrupt, drop the chunks not yet started
            pool.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class DaskExecutor:
    """Chunks on an existing Dask cluster at `address` (e.g. tcp://10.0.0.5:8786); workers need modelarb."""

    address: str
    timeout: float = 30.0

    def map_chunks(self, fn: ChunkFn[S, R], shared: S, chunks: Sequence[Chunk]) -> Iterator[tuple[int, R]]:
        from distributed import Client
        from distributed import as_completed as dask_completed

        try:
            client = Client(self.address, timeout=self.timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise AnalysisError(f"cannot reach the Dask scheduler at {self.address}: {exc}") from None
        with client:
            remote = client.scatter(shared, broadcast=True)
            futures: dict[Any, int] = {
                client.submit(fn, remote, start, stop, pure=False): k for k, (start, stop) in enumerate(chunks)
            }
            for future in dask_completed(futures, loop=client.loop):
                yield futures[future], future.result()


def executor_for(name: str | None = None, cluster: str | None = None, workers: int | None = None) -> Executor:
    """An executor from CLI-style options: a Dask cluster address wins; else `serial` or `processes`."""
    if cluster:
        if not cluster.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
            raise AnalysisError(f"--cluster {cluster!r} is not a scheduler address; write e.g. tcp://HOST:8786")
        return DaskExecutor(cluster)
    if workers is not None and workers < 1:
        raise AnalysisError(f"workers must be at least 1, got {workers}")
    if name in (None, "processes"):
        return ProcessExecutor(workers)
    if name == "serial":
        return SerialExecutor()
    raise AnalysisError(f"unknown executor {name!r}; use one of {', '.join(EXECUTORS)}, or a Dask cluster address")
