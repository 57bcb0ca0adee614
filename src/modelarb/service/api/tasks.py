"""`/v1/tasks`: submit a task (idempotently), read it, page through one's own, cancel."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from modelarb.errors import ServiceError
from modelarb.service.admission import Rejected, TaskRequest, submit_task
from modelarb.service.api.auth import customer
from modelarb.service.api.models import ERRORS, AttemptOut, TaskOut, TaskPage, TaskRequestBody
from modelarb.service.money import from_micro
from modelarb.service.states import CANCELLED, QUEUED, RUNNING
from modelarb.service.store.tables import Attempt, Task
from modelarb.service.tasks import finish
from modelarb.service.verifiers import check_spec

router = APIRouter(prefix="/v1", tags=["tasks"], responses=ERRORS)


def task_out(session: Session, task: Task, unit: str) -> TaskOut:
    attempts = session.execute(select(Attempt).where(Attempt.task_id == task.id).order_by(Attempt.id)).scalars()
    return TaskOut(
        id=task.id,
        state=task.state,
        charging=task.charging,
        price=from_micro(task.price_micro),
        price_micro=task.price_micro,
        charged=from_micro(task.charged_micro),
        charged_micro=task.charged_micro,
        cost_unit=unit,
        plan_id=task.plan_id,
        quote_id=task.quote_id,
        instance=task.instance,
        cascade={"index": task.cascade_index, "order": task.order, "caps": [from_micro(c) for c in task.caps_micro]},
        attempts=[
            AttemptOut(
                provider=a.provider,
                stage=a.stage,
                number=a.number,
                state=a.state,
                input_tokens=a.input_tokens,
                output_tokens=a.output_tokens,
                cost=from_micro(a.cost_micro),
                cost_micro=a.cost_micro,
                verified=a.verified,
                verdict=a.verdict,
                latency_ms=a.latency_ms,
                error=a.error,
            )
            for a in attempts
        ],
        solution=task.solution,
        error=task.error,
        created_at=task.created_at,
        finished_at=task.finished_at,
    )


def _own_task(session: Session, task_id: str, customer_id: int, *, lock: bool = False) -> Task:
    task = session.get(Task, task_id, with_for_update=lock)
    if task is None or task.customer_id != customer_id:
        raise HTTPException(404, f"no task {task_id!r}")
    return task


@router.post("/tasks", response_model=TaskOut, status_code=202)
def create_task(
    body: TaskRequestBody,
    request: Request,
    response: Response,
    customer_id: int = Depends(customer),
    idempotency_key: str | None = Header(None, max_length=200, description="Retries with the same key: one task."),
) -> TaskOut:
    """Admit a task and queue it; a retry with the same Idempotency-Key returns the same task, charged once."""
    broker = request.app.state.broker
    try:
        verifier = check_spec(body.verifier, broker.settings.verifier_commands)
    except ServiceError as exc:
        raise Rejected("invalid", f"verifier: {exc}") from None
    if verifier["kind"] == "replay" and body.instance is None:
        raise Rejected("invalid", "the replay verifier needs the task's instance")
    task_request = TaskRequest(
        messages=[m.model_dump() for m in body.messages],
        verifier=verifier,
        max_price=body.max_price,
        quote_id=body.quote_id,
        charging=body.charging,
        instance=body.instance,
        metadata=body.metadata,
    )
    task, created = submit_task(
        broker.store,
        broker.terms,
        customer_id,
        task_request,
        idempotency_key,
        broker.rng,
        broker.settings.default_charging,
    )
    if created:
        broker.wake.set()
    else:
        response.status_code = 200
    with broker.store.reading() as session:
        return task_out(session, task, broker.plan.cost_unit)


@router.get("/tasks/{task_id}", response_model=TaskOut)
def get_task(task_id: str, request: Request, customer_id: int = Depends(customer)) -> TaskOut:
    """A task's state, attempts, solution and charge (404 for another customer's task)."""
    broker = request.app.state.broker
    with broker.store.reading() as session:
        return task_out(session, _own_task(session, task_id, customer_id), broker.plan.cost_unit)


@router.get("/tasks", response_model=TaskPage)
def list_tasks(
    request: Request,
    customer_id: int = Depends(customer),
    limit: int = Query(50, ge=1, le=500),
    after: str | None = Query(None, max_length=64, description="The next_after of the previous page."),
    state: str | None = Query(None, max_length=16),
) -> TaskPage:
    """The caller's tasks, oldest first, a page at a time."""
    broker = request.app.state.broker
    with broker.store.reading() as session:
        query = select(Task).where(Task.customer_id == customer_id)
        if state is not None:
            query = query.where(Task.state == state)
        if after is not None:
            last = _own_task(session, after, customer_id)
            query = query.where(
                (Task.created_at > last.created_at) | ((Task.created_at == last.created_at) & (Task.id > last.id))
            )
        rows = list(session.execute(query.order_by(Task.created_at, Task.id).limit(limit + 1)).scalars())
        page = [task_out(session, t, broker.plan.cost_unit) for t in rows[:limit]]
    return TaskPage(tasks=page, next_after=page[-1].id if len(rows) > limit else None)


@router.post("/tasks/{task_id}/cancel", response_model=TaskOut)
def cancel_task(task_id: str, request: Request, customer_id: int = Depends(customer)) -> TaskOut:
    """Cancel: a queued task ends now (refunded); a running one ends after its current attempt."""
    broker = request.app.state.broker
    with broker.store.transaction() as session:
        task = _own_task(session, task_id, customer_id, lock=True)
        if task.state == QUEUED:
            finish(session, task, CANCELLED)
        elif task.state == RUNNING:
            task.cancel_requested = True
    with broker.store.reading() as session:
        return task_out(session, _own_task(session, task_id, customer_id), broker.plan.cost_unit)
