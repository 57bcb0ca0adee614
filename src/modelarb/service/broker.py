"""The broker process: its options, the plan it serves, provider clients, and the worker threads.

Workers are threads of the broker process: each claims a task (several broker processes on
one database share the queue) and runs it to a final state; a heartbeat renews the leases
of the tasks this process holds, so a task whose broker died is resumed by another (or by
this one after a restart) once its lease runs out.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from modelarb.core.plan import Plan
from modelarb.errors import ServiceError
from modelarb.service.admission import Terms, register_plan
from modelarb.service.agents import Harness
from modelarb.service.budget import LeaseLost
from modelarb.service.money import to_micro
from modelarb.service.observability import Metrics, current_task
from modelarb.service.providers import ProviderClient
from modelarb.service.settings import ProviderConfig, check_covers
from modelarb.service.states import CHARGING, PER_TASK
from modelarb.service.store.engine import Store
from modelarb.service.store.migrate import upgrade
from modelarb.service.store.tables import Task
from modelarb.service.tasks import RunnerSetup, TaskRunner, renew_leases
from modelarb.service.verifiers import VerifierContext

log = logging.getLogger("modelarb.broker")


class BrokerSettings(BaseModel):
    """How the broker sells and works (the `modelarb serve` options)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    discount: Decimal = Field(
        default=Decimal("0.05"), ge=0, lt=1, description="Fraction below the market price it charges."
    )
    default_charging: str = Field(default=PER_TASK, description="Charging mode of a task that names no quote.")
    quote_ttl_s: float = Field(default=600.0, gt=0, description="How long a quote stays valid, in seconds.")
    workers: int = Field(default=8, ge=0, le=256, description="Worker threads running tasks in this process.")
    lease_s: float = Field(
        default=30.0, gt=0, description="How long a claimed task stays this process's without renewal."
    )
    poll_s: float = Field(
        default=0.5, gt=0, description="How often an idle worker looks for tasks other processes queued."
    )
    max_body_bytes: int = Field(default=1_048_576, gt=0, description="Largest request body accepted, in bytes.")
    task_hard_limit: float | None = Field(
        default=None, gt=0, description="Most a task may spend on providers (cost unit); default: the sum of its caps."
    )
    verifier_commands: dict[str, list[str]] = Field(
        default_factory=dict, description="Named commands for the `command` verifier (argv; {candidate} = its file)."
    )
    verifier_timeout_s: float = Field(default=60.0, gt=0, description="Wall-clock limit of a sandboxed verifier run.")
    verifier_memory_mb: int = Field(default=1024, gt=0, description="Memory limit of a sandboxed verifier run.")
    replay_key: bytes | None = Field(
        default=None, description="Key shared with a replay market for the `replay` verifier."
    )
    max_attempts_per_stage: int = Field(
        default=100, ge=1, description="Most attempts of one provider on one task, whatever the cap rule says."
    )
    agent_command: list[str] = Field(
        default_factory=list, description="The agent harness (argv) for providers whose attempts are `agent`."
    )
    agent_timeout_s: float = Field(default=600.0, gt=0, description="Wall-clock limit of one agent attempt.")
    agent_max_steps: int = Field(default=50, ge=1, description="Most model calls one agent attempt may make.")
    agent_output: str = Field(default="candidate.txt", description="The file the harness writes its candidate to.")
    agent_readonly_paths: list[str] = Field(
        default_factory=list, description="Host paths the harness may read (its code, its tools)."
    )
    gateway_url: str | None = Field(
        default=None, description="Where harnesses reach this broker's gateway, e.g. http://127.0.0.1:8080/gateway/v1."
    )


def read_replay_key(path: Path | None) -> bytes | None:
    """The replay key from a file, else `$MODELARB_REPLAY_KEY`, else None."""
    if path is not None:
        try:
            return path.read_bytes().strip()
        except OSError as exc:
            raise ServiceError(f"cannot read the replay key file {path}: {exc.strerror}") from None
    value = os.environ.get("MODELARB_REPLAY_KEY")
    return value.encode() if value else None


@dataclass
class Broker:
    """One broker process: the store, the plan's terms, provider clients, and its workers."""

    store: Store
    plan: Plan
    providers: Mapping[str, ProviderConfig]
    settings: BrokerSettings = field(default_factory=lambda: BrokerSettings())

    def __post_init__(self) -> None:
        if self.settings.default_charging not in CHARGING:
            raise ServiceError(f"the default charging must be one of {', '.join(CHARGING)}")
        attempt_cost = self.plan.require_live()
        check_covers(self.providers, self.plan.providers)
        agents = sorted(p for p in self.plan.providers if self.providers[p].attempt == "agent")
        if agents and not (self.settings.agent_command and self.settings.gateway_url):
            raise ServiceError(
                f"{', '.join(agents)} make agent attempts: give the harness (--agent-command) and where it reaches "
                "the gateway (--gateway-url)"
            )
        upgrade(self.store.engine)
        plan_id = register_plan(self.store, self.plan)
        hard_limit = None if self.settings.task_hard_limit is None else to_micro(self.settings.task_hard_limit)
        self.terms = Terms(self.plan, plan_id, self.settings.discount, self.settings.quote_ttl_s, hard_limit)
        used = {p for cascade in self.plan.cascades for p in cascade.providers}
        self.clients = {name: ProviderClient(self.providers[name]) for name in sorted(used)}
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.metrics = Metrics(self.store)
        self.setup = RunnerSetup(
            store=self.store,
            clients=self.clients,
            attempt_cost_micro={p: to_micro(attempt_cost[p]) for p in used},
            verifier_context=self._verifier_context,
            lease_s=self.settings.lease_s,
            metrics=self.metrics,
            max_attempts_per_stage=self.settings.max_attempts_per_stage,
            harness=Harness(
                self.settings.agent_command,
                self.settings.agent_timeout_s,
                self.settings.agent_max_steps,
                self.settings.agent_output,
                readonly_paths=tuple(self.settings.agent_readonly_paths),
            )
            if self.settings.agent_command
            else None,
            gateway_url=self.settings.gateway_url,
        )
        self.rng = random.Random()
        self._running: dict[str, str] = {}  # task id -> the worker running it
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _verifier_context(self, task: Task, provider: str) -> VerifierContext:
        return VerifierContext(
            replay_key=self.settings.replay_key,
            commands=self.settings.verifier_commands,
            instance=task.instance,
            provider=provider,
            timeout_s=self.settings.verifier_timeout_s,
            memory_mb=self.settings.verifier_memory_mb,
        )

    def start(self) -> None:
        """Start the workers (each its own worker id, `<process>/<k>`) and the lease heartbeat."""
        self._stop.clear()
        for k in range(self.settings.workers):
            runner = TaskRunner(self.setup, f"{self.worker_id}/{k}", random.Random())
            self._threads.append(threading.Thread(target=self._work, args=(runner,), name=f"worker-{k}", daemon=True))
        self._threads.append(threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the workers to stop after their current step and wait for them."""
        self._stop.set()
        self.wake.set()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads.clear()
        for client in self.clients.values():
            client.close()

    def _work(self, runner: TaskRunner) -> None:
        """Claim and run tasks until stopped; whatever goes wrong with one task, go on with the next."""
        while not self._stop.is_set():
            task_id = None
            try:
                task_id = runner.claim()
                if task_id is None:
                    self.wake.wait(self.settings.poll_s)
                    self.wake.clear()
                    continue
                self._running[task_id] = runner.worker
                current_task.set(task_id)
                runner.run(task_id)
            except LeaseLost:
                log.warning("lost the lease of task %s; another worker has it", task_id)
            except Exception:
                log.exception("task %s failed in the broker", task_id)
                self._give_up(runner, task_id)
            finally:
                if task_id is not None:
                    self._running.pop(task_id, None)
                current_task.set(None)

    def _give_up(self, runner: TaskRunner, task_id: str | None) -> None:
        """End a task its run raised on; if even that fails (the database is down), its lease lapses and a
        worker resumes it later."""
        try:
            if task_id is not None:
                runner.fail(task_id, "the broker failed while running this task; see its log")
        except Exception:
            log.exception("could not end task %s; it is resumed when its lease lapses", task_id)
        self._stop.wait(self.settings.poll_s)

    def _heartbeat(self) -> None:
        """Renew the leases of the tasks this process is running now (and only those)."""
        while not self._stop.wait(self.settings.lease_s / 3):
            try:
                renew_leases(self.store, dict(self._running), self.settings.lease_s)
            except Exception:
                log.exception("could not renew task leases")
