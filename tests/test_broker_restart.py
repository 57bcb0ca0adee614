"""A broker killed (SIGKILL) in the middle of a run and started again on the same database finishes every task."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from broker_process import BrokerProcess, serve_args
from broker_setup import (
    REPLAY_KEY,
    replay_task,
    running_broker,
    synthetic_market,
    synthetic_plan,
    wait_final,
)
from modelarb.service import reports
from modelarb.service.keys import create_key
from modelarb.service.replay.market import create_replay_app
from modelarb.service.states import FINAL, SOLVED
from modelarb.service.store.engine import Store
from modelarb.service.store.migrate import upgrade
from modelarb.service.store.tables import Attempt, Call, LedgerTransaction, Task
from modelarb.service.tasks import TaskRunner
from servers import serve_in_thread

CALL_DELAY_S = 0.05
TASKS = 80  # the kill interrupts the 4 workers' tasks in flight; the rest only queue (more prove nothing new)


class Slow:
    """The replay market answering each call after a short delay, so a run lasts long enough to be interrupted."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await asyncio.sleep(CALL_DELAY_S)
        await self.app(scope, receive, send)


@pytest.fixture
def replay_url() -> Iterator[str]:
    outcomes = synthetic_market()
    url, stop = serve_in_thread(Slow(create_replay_app(outcomes, REPLAY_KEY)))
    try:
        yield url
    finally:
        stop()


def test_a_broker_killed_mid_run_resumes_every_task(store_url: str, tmp_path: Path, replay_url: str) -> None:
    outcomes = synthetic_market()
    args = serve_args(tmp_path, synthetic_plan(outcomes), store_url, replay_url, "--lease", "1")
    store = Store.open(store_url)
    upgrade(store.engine)
    key = create_key(store, "erin")
    headers = {"Authorization": f"Bearer {key}"}
    first = BrokerProcess(args, tmp_path / "broker.log")
    try:
        with httpx.Client(base_url=first.url, headers=headers, timeout=30) as client:
            instances = [str(outcomes.instances[k % outcomes.n_instances]) for k in range(TASKS)]
            ids = [client.post("/v1/tasks", json=replay_task(i)).json()["id"] for i in instances]
            deadline = time.monotonic() + 30
            while _count_final(store) < TASKS // 10 and time.monotonic() < deadline:
                time.sleep(0.02)
        first.kill()
    finally:
        first.stop()
    unfinished = len(ids) - _count_final(store)
    assert unfinished > 0, "the run ended before the broker was killed; slow the replay market down"
    second = BrokerProcess(args, tmp_path / "broker.log")
    try:
        with httpx.Client(base_url=second.url, headers=headers, timeout=30) as client:
            done = wait_final(client, ids, timeout_s=90)
    finally:
        second.stop()
    assert all(task["state"] in FINAL for task in done.values())
    with store.reading() as session:
        charges = session.execute(
            select(LedgerTransaction.task_id, func.count())
            .where(LedgerTransaction.kind == "charge")
            .group_by(LedgerTransaction.task_id)
        ).all()
    assert len(charges) == len(ids) and all(count == 1 for _, count in charges)
    with store.reading() as session:
        assert session.execute(select(Call).where(Call.state == "held")).first() is None
        interrupted = session.execute(select(Call).where(Call.error.like("interrupted%"))).scalars().all()
    assert all(call.state == "settled" and call.cost_micro == call.reserved_micro for call in interrupted)
    assert reports.check(store) == []
    store.close()


def _count_final(store: Store) -> int:
    with store.reading() as session:
        return int(session.execute(select(func.count()).select_from(Task).where(Task.state.in_(FINAL))).scalar_one())


class CrashAfterVerifying(TaskRunner):
    """A runner that dies (as if killed) between recording a verified attempt and finishing its task."""

    def _finish(self, task_id: str, state: str, solution: str | None = None, error: str | None = None) -> str:
        if state == SOLVED:
            raise SystemExit("killed after the verdict, before the task was finished")
        return super()._finish(task_id, state, solution, error)


def test_a_task_verified_but_not_finished_is_finished_on_resume(tmp_path: Path) -> None:
    with (
        running_broker(f"sqlite:///{tmp_path / 'v.sqlite3'}", tmp_path, workers=0, lease_s=0.2) as live,
        live.customer("fay") as fay,
    ):
        ids = [fay.post("/v1/tasks", json=replay_task(str(i))).json()["id"] for i in live.outcomes.instances[:12]]
        crashed = CrashAfterVerifying(live.broker.setup, "doomed")
        for _ in ids:
            claimed = crashed.claim()
            with contextlib.suppress(SystemExit):
                crashed.run(claimed)
        before = _attempt_counts(live.store)
        time.sleep(0.3)  # the dead worker's leases lapse
        survivor = TaskRunner(live.broker.setup, "survivor")
        while (claimed := survivor.claim()) is not None:
            survivor.run(claimed)
        done = wait_final(fay, ids)
    was_verified = {t for t, (_, verified) in before.items() if verified}
    assert was_verified, "no task got as far as a verified attempt"
    after = _attempt_counts(live.store)
    for task_id in was_verified:
        assert done[task_id]["state"] == SOLVED and after[task_id] == before[task_id]  # nothing bought again
    assert reports.check(live.store) == []


def _attempt_counts(store: Store) -> dict[str, tuple[int, bool]]:
    counts: dict[str, tuple[int, bool]] = {}
    with store.reading() as session:
        for task_id, state in session.execute(select(Attempt.task_id, Attempt.state)):
            n, verified = counts.get(task_id, (0, False))
            counts[task_id] = (n + 1, verified or state == "verified")
    return counts
