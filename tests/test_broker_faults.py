"""Providers failing every way a real one does: every task ends, nothing is overspent, every reported cent is booked."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

from sqlalchemy import func, select

from broker_setup import PROVIDERS, replay_task, running_broker, wait_final
from modelarb.service import reports
from modelarb.service.replay.faults import Faults
from modelarb.service.states import FAILED, FINAL, PER_TASK, SOLVED
from modelarb.service.store.tables import Attempt, Call

TASKS = 300  # about 1,000 calls: each fault kind about 10 times or more, each invariant checked on every task
RATES = {
    "500": 0.03,
    "429": 0.03,
    "429-bare": 0.02,
    "timeout": 0.01,  # the rarest kind, still about 10 calls
    "drop": 0.02,
    "malformed": 0.02,
    "usage-missing": 0.02,
    "usage-zero": 0.02,
    "usage-lie": 0.02,
    "slow": 0.02,
}
PROVIDER_OPTIONS = "timeout_s = 0.6\nmax_retries = 4\nbackoff_s = 0.005\nmax_backoff_s = 0.05"


def test_every_task_ends_within_its_caps_and_every_reported_cost_is_booked(tmp_path: Path) -> None:
    faults = {p: Faults(dict(RATES), seed=k, hang_s=1.0, slow_s=0.2) for k, p in enumerate(PROVIDERS)}
    started = time.monotonic()
    with (
        running_broker(
            f"sqlite:///{tmp_path / 'faults.sqlite3'}",
            tmp_path,
            faults=faults,
            provider_options=PROVIDER_OPTIONS,
            workers=16,
        ) as live,
        live.customer("olivia") as olivia,
    ):
        quotes = {c: olivia.post("/v1/quotes", json={"charging": c}).json() for c in ("per_task", "per_solution")}
        instances = [str(live.outcomes.instances[k % live.outcomes.n_instances]) for k in range(TASKS)]
        charging = ["per_task" if k % 2 else "per_solution" for k in range(TASKS)]

        def submit(k: int) -> str:
            answer = olivia.post("/v1/tasks", json=replay_task(instances[k], quote_id=quotes[charging[k]]["id"]))
            assert answer.status_code == 202, answer.text
            return str(answer.json()["id"])

        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            ids = list(pool.map(submit, range(TASKS)))
        done = wait_final(olivia, ids, timeout_s=300)
        with live.store.reading() as session:
            calls = session.execute(select(Call)).scalars().all()
            errors = session.execute(select(Attempt.error).where(Attempt.state == "error")).scalars().all()
            flagged_attempts = session.execute(
                select(func.count()).select_from(Attempt).where(Attempt.error.like("%above the call's worst case%"))
            ).scalar_one()
    elapsed = time.monotonic() - started
    assert all(task["state"] in FINAL for task in done.values())
    for k, task_id in enumerate(ids):  # each customer is charged exactly as its quote said
        task, price = done[task_id], quotes[charging[k]]["price_micro"]
        if charging[k] == PER_TASK:
            assert task["charged_micro"] == (0 if task["state"] == FAILED else price)
        else:
            assert task["charged_micro"] == (price if task["state"] == SOLVED else 0)
    assert reports.check(live.store) == []  # balanced; spend within caps and hard limits; nothing held
    lies = [c for c in calls if c.flagged]
    assert lies and all(c.cost_micro == c.reserved_micro for c in lies) and flagged_attempts == len(lies)
    assert all(c.cost_micro is not None and c.cost_micro <= c.reserved_micro for c in calls if c.state == "settled")
    kinds = {"HTTP 500": 0, "HTTP 429": 0, "timed out": 0, "malformed": 0}
    for error in errors:
        for kind in kinds:
            kinds[kind] += kind.lower() in (error or "").lower()
    assert all(count > 0 for count in kinds.values()), kinds
    assert {t["state"] for t in done.values()} >= {"solved", "unsolved"}
    print(
        f"{TASKS} tasks under faults in {elapsed:.1f} s: {len(calls)} calls, {len(errors)} failed calls, "
        f"{len(lies)} usage lies booked at the worst case, states "
        f"{ {s: sum(t['state'] == s for t in done.values()) for s in FINAL} }"
    )
