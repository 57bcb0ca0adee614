"""Bearer-key authentication: who is calling, and may they."""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request

from modelarb.service.keys import ADMIN, CUSTOMER, Principal, authenticate


def principal(request: Request) -> Principal:
    """The caller, from `Authorization: Bearer <key>`; 401 when the key is missing, unknown or revoked."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise HTTPException(
            401, "missing API key: send 'Authorization: Bearer <key>'", headers={"WWW-Authenticate": "Bearer"}
        )
    found = authenticate(request.app.state.broker.store, key.strip())
    if found is None:
        raise HTTPException(401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    return found


def customer(caller: Principal = Depends(principal)) -> int:
    """The calling customer's id: a customer's key is needed (admins manage; customers buy)."""
    if caller.role != CUSTOMER or caller.customer_id is None:
        raise HTTPException(403, "this endpoint needs a customer's key")
    return caller.customer_id


def admin(caller: Principal = Depends(principal)) -> Principal:
    """The admin key."""
    if caller.role != ADMIN:
        raise HTTPException(403, "this endpoint needs an admin key")
    return caller
