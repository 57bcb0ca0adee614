"""Admin endpoints: the plan served, customers and their keys, the ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from modelarb.errors import ServiceError
from modelarb.service import reports
from modelarb.service.api.auth import admin
from modelarb.service.api.models import ERRORS, CustomerRequest, KeyOut, KeyRequest
from modelarb.service.keys import Principal, create_key, ensure_customer, revoke_key
from modelarb.service.money import to_micro

router = APIRouter(prefix="/v1", tags=["admin"], responses=ERRORS)


@router.get("/admin/plan")
def plan(request: Request, _caller: Principal = Depends(admin)) -> dict[str, Any]:
    """The plan this broker serves, with its id."""
    broker = request.app.state.broker
    return {"plan_id": broker.terms.plan_id, "plan": broker.plan.to_dict()}


@router.post("/admin/customers", status_code=201)
def customers(body: CustomerRequest, request: Request, _caller: Principal = Depends(admin)) -> dict[str, Any]:
    """Create a customer or change its spending limit."""
    limit = None if body.spending_limit is None else to_micro(body.spending_limit)
    customer_id = ensure_customer(request.app.state.broker.store, body.name, limit)
    return {"id": customer_id, "name": body.name, "spending_limit": body.spending_limit}


@router.post("/admin/keys", response_model=KeyOut, status_code=201)
def keys(body: KeyRequest, request: Request, _caller: Principal = Depends(admin)) -> KeyOut:
    """A new key for a customer (created if new), or an admin key; the key is shown only here."""
    key = create_key(request.app.state.broker.store, body.customer)
    return KeyOut(key=key, key_id=key.split("_")[1], customer=body.customer)


@router.post("/admin/keys/{key_id}/revoke")
def revoke(key_id: str, request: Request, _caller: Principal = Depends(admin)) -> dict[str, str]:
    """Revoke a key: it fails from the next request on."""
    try:
        return {"revoked": revoke_key(request.app.state.broker.store, key_id)}
    except ServiceError as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/ledger/summary")
def ledger_summary(
    request: Request, _caller: Principal = Depends(admin), since: datetime | None = Query(None)
) -> dict[str, Any]:
    """Revenue, provider spend by provider, profit, realised margin, tasks by state and by day."""
    return reports.summary(request.app.state.broker.store, since)
